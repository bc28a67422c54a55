import json

import numpy as np
import orjson
import pytest

from arcsolver.runtime.errors import InputError
from arcsolver.inference.score import format_report, load_solutions_any, score_cmd, score_submission


def g(*rows):
    return np.array(rows, dtype=np.uint8)


SOLUTIONS = {
    "single_a": [g([1, 2], [3, 4])],  # solved by attempt_2 only
    "multi_b": [g([5]), g([6, 6])],  # output 0 right at attempt_1, output 1 wrong
    "missing_c": [g([7])],  # not in the submission
    "wrong_d": [g([1, 1], [1, 1])],  # attempt has the right cells in the wrong shape
}
SUB = {
    "single_a": [{"attempt_1": [[0]], "attempt_2": [[1, 2], [3, 4]]}],
    "multi_b": [{"attempt_1": [[5]], "attempt_2": [[0]]}, {"attempt_1": [[6]], "attempt_2": [[6], [6]]}],
    "wrong_d": [{"attempt_1": [[1, 1, 1, 1]], "attempt_2": [[1, 1], [1, 1], [1, 1]]}],
    "extra_e": [{"attempt_1": [[0]], "attempt_2": [[0]]}],
}


def test_hand_computed_example_in_both_conventions():
    r = score_submission(SUB, SOLUTIONS)
    assert r["n_tasks"] == 4 and r["n_outputs"] == 5
    # pass@1: only multi_b[0]. Per task: (0 + 1/2 + 0 + 0) / 4; per output: 1 / 5.
    assert r["per_task"]["pass@1"] == pytest.approx(0.125)
    assert r["per_output"]["pass@1"] == pytest.approx(0.2)
    # pass@2: single_a[0] and multi_b[0]. Per task: (1 + 1/2 + 0 + 0) / 4; per output: 2 / 5.
    assert r["per_task"]["pass@2"] == pytest.approx(0.375)
    assert r["per_output"]["pass@2"] == pytest.approx(0.4)
    assert r["solved_outputs"] == {"pass@1": 1, "pass@2": 2}
    assert r["missing_tasks"] == ["missing_c"] and r["extra_tasks"] == ["extra_e"]
    rows = {t["task"]: t for t in r["tasks"]}
    assert rows["single_a"]["attempt_1"] == [False] and rows["single_a"]["any"] == [True]
    assert rows["multi_b"]["attempt_1"] == [True, False] and rows["multi_b"]["any"] == [True, False]
    assert rows["multi_b"]["score@2"] == 0.5 and rows["multi_b"]["n_outputs"] == 2
    assert rows["missing_c"]["missing"] is True and rows["missing_c"]["any"] == [False]
    assert rows["wrong_d"]["any"] == [False]
    assert r["problems"] == []
    orjson.dumps(r)  # JSON-able as is


def test_all_right_multi_test_task_counts_one_task_but_two_outputs():
    sols = {"a": [g([1])], "b": [g([2]), g([3])]}
    sub = {"a": [{"attempt_1": [[0]], "attempt_2": [[0]]}],
           "b": [{"attempt_1": [[2]], "attempt_2": [[0]]}, {"attempt_1": [[0]], "attempt_2": [[3]]}]}
    r = score_submission(sub, sols)
    assert r["per_task"]["pass@2"] == pytest.approx(0.5)  # task a 0, task b 1
    assert r["per_output"]["pass@2"] == pytest.approx(2 / 3)
    assert r["per_task"]["pass@1"] == pytest.approx(0.25) and r["per_output"]["pass@1"] == pytest.approx(1 / 3)


def test_malformed_parts_count_as_wrong_and_are_listed():
    sols = {"a": [g([1]), g([2])], "b": [g([3])], "c": [g([4])]}
    sub = {"a": [{"attempt_2": [[1]]}], "b": [{"attempt_1": [[3, 10]], "attempt_2": [[3]]}], "c": "oops"}
    r = score_submission(sub, sols)
    rows = {t["task"]: t for t in r["tasks"]}
    assert rows["a"]["attempt_1"] == [False, False] and rows["a"]["any"] == [True, False]
    assert rows["b"]["attempt_1"] == [False] and rows["b"]["any"] == [True]
    assert rows["c"]["any"] == [False]
    text = "\n".join(r["problems"])
    assert "task a" in text and "attempt_1" in text and "1 entries for 2" in text
    assert "task b" in text and "0..9" in text and "task c" in text
    with pytest.raises(InputError):
        score_submission([], sols)


def test_report_text_names_both_conventions_and_every_task():
    text = format_report(score_submission(SUB, SOLUTIONS))
    assert "per task" in text and "per output" in text
    assert "37.50%" in text and "40.00%" in text and "12.50%" in text and "20.00%" in text
    for tid in SOLUTIONS:
        assert tid in text
    assert "missing_c" in text.split("missing from the submission")[-1]
    line_b = next(line for line in text.splitlines() if line.startswith("multi_b"))
    assert "Y." in line_b
    # the count says what it counts (it once read "(outputs solved: 1 / 2 of 5)"): 1 by attempt_1, 2 by either
    assert "test outputs solved, of 5: 1 by attempt_1, 2 by either attempt" in text


def _write_kaggle(tmp_path, with_solutions=True):
    challenges = {tid: {"train": [{"input": [[0]], "output": [[1]]}], "test": [{"input": [[0]]} for _ in outs]}
                  for tid, outs in SOLUTIONS.items()}
    cpath = tmp_path / "x_challenges.json"
    cpath.write_text(json.dumps(challenges))
    spath = tmp_path / "x_solutions.json"
    if with_solutions:
        spath.write_text(json.dumps({tid: [o.tolist() for o in outs] for tid, outs in SOLUTIONS.items()}))
    return cpath, spath


def _same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert len(a[k]) == len(b[k]) and all(np.array_equal(x, y) for x, y in zip(a[k], b[k]))


def test_load_solutions_from_any_source(tmp_path):
    cpath, spath = _write_kaggle(tmp_path)
    _same(load_solutions_any(str(spath)), SOLUTIONS)
    _same(load_solutions_any(str(cpath)), SOLUTIONS)  # challenges with solutions beside it
    renamed = tmp_path / "answers.json"
    renamed.write_text(spath.read_text())
    _same(load_solutions_any(str(renamed)), SOLUTIONS)
    folder = tmp_path / "tasks"
    folder.mkdir()
    for tid, outs in SOLUTIONS.items():
        (folder / f"{tid}.json").write_text(json.dumps({
            "train": [{"input": [[0]], "output": [[1]]}],
            "test": [{"input": [[0]], "output": o.tolist()} for o in outs]}))
    _same(load_solutions_any(str(folder)), dict(sorted(SOLUTIONS.items())))


def test_sources_without_answers_are_rejected(tmp_path):
    cpath, _ = _write_kaggle(tmp_path, with_solutions=False)
    with pytest.raises(InputError, match="solutions are required"):
        load_solutions_any(str(cpath))
    with pytest.raises(InputError, match="no such file"):
        load_solutions_any(str(tmp_path / "nope.json"))


def test_score_cmd_text_and_json(tmp_path):
    _, spath = _write_kaggle(tmp_path)
    sub_path = tmp_path / "submission.json"
    sub_path.write_text(json.dumps(SUB))
    text = score_cmd(sub_path, str(spath), as_json=False)
    assert "37.50%" in text
    data = orjson.loads(score_cmd(sub_path, str(spath), as_json=True))
    assert data["per_task"]["pass@2"] == pytest.approx(0.375) and data["per_output"]["pass@2"] == pytest.approx(0.4)
    sub_path.write_text("[1, 2]")
    with pytest.raises(InputError, match="submission.json"):
        score_cmd(sub_path, str(spath), as_json=False)
