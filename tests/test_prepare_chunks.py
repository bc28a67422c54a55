"""`prepare arc` in chunks (data/arc_dataset.build, data/task_stream.py): a build killed after a chunk continues on
the same command to the bytes of an uninterrupted one; bad input in a late chunk leaves nothing; sources are parsed
one chunk at a time."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from arcsolver.cli import main
from arcsolver.data.arc_dataset import ArcStore, TaskSet, build
from arcsolver.data.task_stream import TaskStream
from arcsolver.runtime.errors import InputError

from conftest import random_task

REPO = Path(__file__).resolve().parent.parent


def task_folder(root: Path, rng, n: int = 10) -> Path:
    d = root / "tasks"
    d.mkdir()
    for i in range(n):
        (d / f"t{i:02d}.json").write_text(json.dumps(random_task(rng, max_side=5)))
    return d


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# Builds `out` from the task folder in chunks of 3 tasks; with "kill", SIGKILLs itself once chunk 1 is on disk.
BUILD = """
import os, signal, sys
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.task_stream import TaskStream
src, out, kill = sys.argv[1], sys.argv[2], sys.argv[3] == "kill"
def stop(k):
    if kill and k == 1:
        os.kill(os.getpid(), signal.SIGKILL)
build(out, [TaskSet(src, TaskStream(src, require_outputs=True))], num_aug=8, seed=5, canvas=8, chunk_tasks=3,
      after_chunk=stop)
"""


def test_a_build_killed_after_a_chunk_continues_to_the_same_bytes(tmp_path, rng):
    src = task_folder(tmp_path, rng)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    killed = subprocess.run([sys.executable, "-c", BUILD, str(src), str(tmp_path / "d"), "kill"], env=env)
    assert killed.returncode == -signal.SIGKILL
    partial = tmp_path / ".d.partial"
    assert not (tmp_path / "d").exists() and sorted(p.name for p in partial.glob("chunk-*")) == \
        ["chunk-000000", "chunk-000001"]
    # The same call again, in this process: chunks 2 and 3 only, then the join.
    resumed = []
    build(tmp_path / "d", [TaskSet(str(src), TaskStream(str(src), require_outputs=True))], num_aug=8, seed=5,
          canvas=8, chunk_tasks=3, after_chunk=resumed.append)
    assert resumed == [2, 3] and not partial.exists()
    build(tmp_path / "whole", [TaskSet(str(src), TaskStream(str(src), require_outputs=True))], num_aug=8, seed=5,
          canvas=8, chunk_tasks=3)
    assert files_of(tmp_path / "d") == files_of(tmp_path / "whole")
    # Chunking does not change the bytes either (one chunk holds everything here).
    build(tmp_path / "one", [TaskSet(str(src), TaskStream(str(src), require_outputs=True))], num_aug=8, seed=5,
          canvas=8)
    assert files_of(tmp_path / "one") == files_of(tmp_path / "whole")
    assert ArcStore(tmp_path / "d").task_ids == [f"t{i:02d}" for i in range(10)]


def test_a_partial_build_of_other_options_is_started_over(tmp_path, rng):
    src = task_folder(tmp_path, rng, n=4)
    sets = [TaskSet(str(src), TaskStream(str(src), require_outputs=True))]

    class Stop(Exception):
        pass

    def stop(k):
        raise Stop

    with pytest.raises(Stop):
        build(tmp_path / "d", sets, num_aug=4, seed=1, canvas=8, chunk_tasks=2, after_chunk=stop)
    assert (tmp_path / ".d.partial" / "chunk-000000").is_dir()
    seen = []
    build(tmp_path / "d", sets, num_aug=4, seed=2, canvas=8, chunk_tasks=2, after_chunk=seen.append)
    assert seen == [0, 1]  # another seed: nothing of the seed-1 chunks reused
    build(tmp_path / "ref", sets, num_aug=4, seed=2, canvas=8, chunk_tasks=2)
    assert files_of(tmp_path / "d") == files_of(tmp_path / "ref")
    (tmp_path / ".other.partial").mkdir()  # a folder of that name that no build left: refused, kept
    (tmp_path / ".other.partial" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not left by an interrupted prepare"):
        build(tmp_path / "other", sets, num_aug=4, seed=2, canvas=8)
    assert (tmp_path / ".other.partial" / "notes.txt").read_text() == "mine"


def test_bad_task_in_a_late_chunk_is_one_line_and_leaves_nothing(tmp_path, rng):
    src = task_folder(tmp_path, rng, n=6)
    (src / "t05.json").write_text(json.dumps({"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": []}))
    r = CliRunner().invoke(main, ["prepare", "arc", "--train", str(src), "--num-aug", "2", "--canvas", "8",
                                  "--chunk-tasks", "2", "--out", str(tmp_path / "d")])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "t05.json" in lines[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks"]  # no dataset, no partial folder


def test_sources_are_parsed_one_run_of_units_at_a_time(tmp_path):
    folder = tmp_path / "re_arc"
    folder.mkdir()
    example = {"input": [[1, 2]], "output": [[2, 1]]}
    for key in ("a", "b", "c"):
        (folder / f"{key}.json").write_text(json.dumps([example] * 4))
    (folder / "d.json").write_text("not json")
    stream = TaskStream(f"rearc:{folder}", require_outputs=True, demos=1, seed=0)
    assert len(stream) == 4
    assert [t.id for t in stream.tasks(1, 3)] == ["b.0", "b.1", "c.0", "c.1"]  # d.json never opened
    with pytest.raises(InputError, match="d.json"):
        stream.tasks(3, 4)
    lines = tmp_path / "heavy.jsonl"
    lines.write_text("\n".join([json.dumps({"id": "x", "examples": [example] * 2}), "", "  ",
                                json.dumps({"id": "y", "examples": [example] * 2}), "{broken"]) + "\n")
    stream = TaskStream(f"jsonl:{lines}", require_outputs=True, demos=1, seed=0)
    assert len(stream) == 3 and [t.id for t in stream.tasks(1, 2)] == ["y.0"]  # blank lines are not units
    with pytest.raises(InputError, match="line 5"):
        stream.tasks(2, 3)


def test_parallel_workers_give_the_same_bytes_and_resume_each_other(tmp_path, rng):
    src = task_folder(tmp_path, rng)

    def sets():
        return [TaskSet(str(src), TaskStream(str(src), require_outputs=True))]

    class Stop(Exception):
        pass

    def stop_at_1(k):
        if k == 1:
            raise Stop

    build(tmp_path / "serial", sets(), num_aug=8, seed=5, canvas=8, chunk_tasks=3, workers=1)
    build(tmp_path / "parallel", sets(), num_aug=8, seed=5, canvas=8, chunk_tasks=3, workers=3)
    assert files_of(tmp_path / "parallel") == files_of(tmp_path / "serial")
    with pytest.raises(Stop):  # stopped by 3 workers after chunk 1, continued by one process
        build(tmp_path / "mixed", sets(), num_aug=8, seed=5, canvas=8, chunk_tasks=3, workers=3, after_chunk=stop_at_1)
    resumed = []
    build(tmp_path / "mixed", sets(), num_aug=8, seed=5, canvas=8, chunk_tasks=3, workers=1, after_chunk=resumed.append)
    assert resumed == [2, 3] and files_of(tmp_path / "mixed") == files_of(tmp_path / "serial")
