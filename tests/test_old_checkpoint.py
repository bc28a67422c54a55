"""A checkpoint written before the stage subpackages (the flat layout of commit cb07111, made by
tests/fixtures/old_layout/make.sh) loads, predicts and resumes with today's code: the state-dict names, config.json,
and train_state.pt, whose ACT carry is a pickled `arcsolver.trm.Carry` (today `arcsolver.model.trm.Carry`)."""
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from arcsolver.inference.predict import load_model, predict
from arcsolver.model import checkpoint
from arcsolver.model.checks import check_checkpoint
from arcsolver.model.trm import Carry
from arcsolver.runtime.jsonio import read_json
from arcsolver.training.config import build_config
from arcsolver.training.train import train

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "old_layout"
CK = FIXTURE / "checkpoint"
EXPECTED = FIXTURE / "expected"


@pytest.fixture
def data(tmp_path) -> Path:
    """The fixture's dataset, copied: nothing a test runs may write into tests/fixtures."""
    return Path(shutil.copytree(FIXTURE / "data", tmp_path / "data"))


def test_the_fixture_pickles_the_flat_layouts_class_paths():
    """Guards the tests below: the training state really names the old modules (else they would prove nothing)."""
    with zipfile.ZipFile(CK / "train_state.pt") as zf:
        pickled = b"".join(zf.read(n) for n in zf.namelist() if n.endswith(".pkl"))
    assert b"arcsolver.trm" in pickled and b"arcsolver.model" not in pickled
    assert sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file()) < 450_000  # a small fixture


def test_old_training_state_loads_into_todays_classes():
    st = checkpoint.load_train_state(CK)
    assert st["step"] == 2
    carry = st["carry"][0]
    assert isinstance(carry, Carry) and type(carry.inner_carry).__module__ == "arcsolver.model.trm"


def test_old_weights_load_under_their_names_and_check_clean():
    ck, cfg = check_checkpoint(CK)
    assert ck == CK and cfg["step"] == 2
    model, _ = load_model(CK, torch.device("cpu"))  # strict load_state_dict: every name still matches
    ours = model.state_dict()
    saved = checkpoint.load_weights(CK)  # EMA copy over the raw weights, as load_model uses them
    assert len(saved) == len(ours)
    for name, tensor in saved.items():
        assert torch.equal(ours[name.removeprefix("model.")], tensor), name


def test_old_checkpoint_predicts_what_the_old_code_predicted(data, tmp_path):
    res = predict(CK, tmp_path / "submission.json", data=str(data), cpu=True, quiet=True)
    assert res.tasks == 2
    assert read_json(tmp_path / "submission.json") == read_json(EXPECTED / "submission.json")


def test_old_checkpoint_resumes_as_the_old_code_resumed_it(data, tmp_path):
    """Optimizer, loader position, RNG and carry from the old train_state.pt drive steps 3-4 exactly as the old code
    drove them (weights within float32 rounding of a different CPU; a lost state would differ by ~1e-3)."""
    cfg = build_config("tiny-cpu", ["arch.hidden_size=16", "arch.L_layers=1", "global_batch_size=4", "max_steps=4"],
                       data=str(data), out=str(tmp_path / "run"))  # make.sh's settings
    res = train(cfg, resume=str(CK), cpu=True, quiet=True)
    assert res.steps == 4
    ours = load_file(str(res.checkpoint / "model.safetensors"))
    old = load_file(str(EXPECTED / "resumed_step4.safetensors"))
    assert ours.keys() == old.keys()
    for name in old:
        assert torch.allclose(ours[name], old[name], rtol=0, atol=1e-6), name
    fresh = load_file(str(CK / "model.safetensors"))
    assert any(not torch.allclose(fresh[n], old[n], rtol=0, atol=1e-4) for n in old)  # steps 3-4 moved them
