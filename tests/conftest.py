import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "tasks" / "bundled"


def write_task(folder: Path, name: str, task: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name}.json"
    p.write_text(json.dumps(task))
    return p


def random_task(rng: np.random.Generator, n_train=3, n_test=1, max_side=8, colors=(1, 2, 3, 4, 5)) -> dict:
    def grid():
        h, w = int(rng.integers(1, max_side + 1)), int(rng.integers(1, max_side + 1))
        return rng.choice((0,) + tuple(colors), size=(h, w)).tolist()
    return {"train": [{"input": grid(), "output": grid()} for _ in range(n_train)],
            "test": [{"input": grid(), "output": grid()} for _ in range(n_test)]}


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
