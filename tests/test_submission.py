import copy
import json
import logging

import numpy as np
import orjson
import pytest

from arcsolver.data import colors
from arcsolver.data.arc_tasks import Pair, Task, load_tasks
from arcsolver.data.encoding import encode_grid
from arcsolver.runtime.errors import InputError
from arcsolver.inference.submission import (build_submission, check_submission, fallback_submission, validate_file,
                                  validate_submission, write_submission)
from arcsolver.inference.vote import Candidate, VoteBook


def g(*rows):
    return np.array(rows, dtype=np.uint8)


def make_tasks() -> list[Task]:
    demo = [Pair(g([1, 0]), g([0, 1]))]
    return [
        Task("aaaa0001", demo, [Pair(g([1, 2], [3, 4]), g([4, 3], [2, 1]))]),
        Task("bbbb0002", demo, [Pair(g([5]), g([6])), Pair(g([7, 7]), g([8, 8])), Pair(g([1], [2]), g([2], [1]))]),
        Task("cccc0003", demo, [Pair(g([0, 0, 0]), None)]),
    ]


def add(book: VoteBook, task: str, i: int, grid: np.ndarray, times: int = 1) -> None:
    n = times
    book.add([task] * n, np.full(n, i), np.stack([encode_grid(grid)] * n), np.zeros(n, int),
             np.stack([colors.IDENTITY] * n), np.zeros(n))


def kaggle_sample(tasks) -> dict:
    """A sample_submission.json-shaped object, round-tripped through JSON text as Kaggle would read it."""
    sub = {t.id: [{"attempt_1": [[0]], "attempt_2": [[0]]} for _ in t.test] for t in tasks}
    return json.loads(json.dumps(sub))


def test_kaggle_style_sample_and_fallback_are_valid():
    tasks = make_tasks()
    assert validate_submission(kaggle_sample(tasks), tasks) == []
    fb = fallback_submission(tasks)
    assert validate_submission(fb, tasks) == []
    assert fb["bbbb0002"][1] == {"attempt_1": [[7, 7]], "attempt_2": [[7, 7]]}
    check_submission(fb, tasks)  # does not raise


def test_build_uses_ranked_candidates_and_documented_fallbacks(caplog):
    tasks = make_tasks()
    book = VoteBook()
    add(book, "aaaa0001", 0, g([4, 3], [2, 1]), times=3)
    add(book, "aaaa0001", 0, g([9]), times=2)
    add(book, "aaaa0001", 0, g([8]), times=1)  # third: beyond k=2
    add(book, "bbbb0002", 0, g([6]), times=1)  # single candidate -> attempt_2 = the test input
    add(book, "bbbb0002", 2, g([3]), times=1)
    # bbbb0002 test 1 and cccc0003 have no candidates at all -> both attempts = the test input
    sub = build_submission(tasks, book)
    assert validate_submission(sub, tasks) == []
    assert list(sub) == ["aaaa0001", "bbbb0002", "cccc0003"]
    assert sub["aaaa0001"] == [{"attempt_1": [[4, 3], [2, 1]], "attempt_2": [[9]]}]
    assert sub["bbbb0002"] == [{"attempt_1": [[6]], "attempt_2": [[5]]},
                               {"attempt_1": [[7, 7]], "attempt_2": [[7, 7]]},
                               {"attempt_1": [[3]], "attempt_2": [[1], [2]]}]
    assert sub["cccc0003"] == [{"attempt_1": [[0, 0, 0]], "attempt_2": [[0, 0, 0]]}]
    assert all(type(x) is int for x in sub["aaaa0001"][0]["attempt_1"][0])  # plain ints, not numpy scalars
    add(book, "zzzz9999", 0, g([1]))
    with caplog.at_level(logging.WARNING, logger="arcsolver.inference.submission"):
        assert build_submission(tasks, book) == sub  # votes for unknown tasks are ignored, with a warning
    assert "zzzz9999" in caplog.text
    k1 = build_submission(tasks, book, k=1)
    assert k1["aaaa0001"] == [{"attempt_1": [[4, 3], [2, 1]], "attempt_2": [[1, 2], [3, 4]]}]
    with pytest.raises(ValueError):
        build_submission(tasks, book, k=3)


def test_fault_in_one_task_still_gives_a_complete_valid_file(monkeypatch, caplog, tmp_path):
    tasks = make_tasks()
    book = VoteBook()
    add(book, "aaaa0001", 0, g([4, 3], [2, 1]), times=2)
    add(book, "bbbb0002", 0, g([6]))
    add(book, "bbbb0002", 1, g([8, 8]))
    real = VoteBook.ranked

    def flaky(self, task, i):
        if task == "bbbb0002" and i == 1:
            raise RuntimeError("injected fault")
        return real(self, task, i)

    monkeypatch.setattr(VoteBook, "ranked", flaky)
    with caplog.at_level(logging.WARNING, logger="arcsolver.inference.submission"):
        sub = build_submission(tasks, book)
    assert validate_submission(sub, tasks) == []
    assert sub["aaaa0001"][0]["attempt_1"] == [[4, 3], [2, 1]]  # other tasks unaffected
    assert sub["bbbb0002"] == fallback_submission(tasks)["bbbb0002"]  # the whole faulty task falls back
    assert "bbbb0002" in caplog.text and "injected fault" in caplog.text
    write_submission(tmp_path / "submission.json", sub, tasks)
    assert orjson.loads((tmp_path / "submission.json").read_bytes()) == sub


def test_a_candidate_that_is_not_a_grid_falls_back_instead_of_sinking_the_file(monkeypatch):
    tasks = make_tasks()
    monkeypatch.setattr(VoteBook, "ranked",
                        lambda self, task, i: [Candidate(np.zeros((31, 2), np.uint8), 5, 0.9)] if task == "cccc0003"
                        else [])
    sub = build_submission(tasks, VoteBook())
    assert validate_submission(sub, tasks) == []
    assert sub["cccc0003"][0]["attempt_1"] == [[0, 0, 0]]


def _mutations():
    """(name, mutate(sub), words that must appear in the problem)."""
    def set_(path, value):
        def f(s):
            obj = s
            for p in path[:-1]:
                obj = obj[p]
            obj[path[-1]] = value
        return f

    return [
        ("missing task", lambda s: s.pop("bbbb0002"), ["bbbb0002", "missing task"]),
        ("extra task", lambda s: s.__setitem__("ffff9999", [{"attempt_1": [[0]], "attempt_2": [[0]]}]),
         ["ffff9999", "extra task"]),
        ("too few entries", lambda s: s["bbbb0002"].pop(), ["bbbb0002", "2 entries for 3 test inputs"]),
        ("too many entries", lambda s: s["aaaa0001"].append({"attempt_1": [[0]], "attempt_2": [[0]]}),
         ["aaaa0001", "2 entries for 1 test inputs"]),
        ("missing attempt_2", lambda s: s["bbbb0002"][2].pop("attempt_2"), ["bbbb0002", "[2]", "attempt_2"]),
        ("missing attempt_1", lambda s: s["aaaa0001"][0].pop("attempt_1"), ["aaaa0001", "[0]", "attempt_1"]),
        ("extra key", set_(["aaaa0001", 0, "attempt_3"], [[1]]), ["aaaa0001", "[0]", "attempt_3"]),
        ("entries not a list", set_(["aaaa0001"], {"attempt_1": [[0]], "attempt_2": [[0]]}),
         ["aaaa0001", "expected a list"]),
        ("entry not an object", set_(["bbbb0002", 1], [[0]]), ["bbbb0002", "[1]", "expected an object"]),
        ("empty grid", set_(["aaaa0001", 0, "attempt_1"], []), ["aaaa0001", "[0].attempt_1", "empty"]),
        ("empty row", set_(["aaaa0001", 0, "attempt_1"], [[]]), ["aaaa0001", "[0].attempt_1", "empty"]),
        ("ragged", set_(["bbbb0002", 0, "attempt_2"], [[1, 2], [3]]),
         ["bbbb0002", "[0].attempt_2[1]", "not rectangular"]),
        ("value 10", set_(["bbbb0002", 1, "attempt_1"], [[1, 10]]), ["bbbb0002", "[1].attempt_1[0][1]", "0..9"]),
        ("negative", set_(["bbbb0002", 1, "attempt_1"], [[-1]]), ["bbbb0002", "[1].attempt_1[0][0]", "0..9"]),
        ("float", set_(["cccc0003", 0, "attempt_2"], [[1.0]]), ["cccc0003", "[0].attempt_2[0][0]", "not an integer"]),
        ("bool", set_(["cccc0003", 0, "attempt_2"], [[True]]), ["cccc0003", "[0].attempt_2[0][0]", "not an integer"]),
        ("string", set_(["cccc0003", 0, "attempt_2"], "[[1]]"), ["cccc0003", "[0].attempt_2", "expected a grid"]),
        ("flat list", set_(["cccc0003", 0, "attempt_2"], [1, 2]), ["cccc0003", "[0].attempt_2[0]", "expected a row"]),
        ("31 rows", set_(["aaaa0001", 0, "attempt_1"], [[0]] * 31), ["aaaa0001", "[0].attempt_1", "31 rows"]),
        ("31 columns", set_(["aaaa0001", 0, "attempt_1"], [[0] * 31]), ["aaaa0001", "[0].attempt_1[0]", "31 cells"]),
    ]


@pytest.mark.parametrize("name,mutate,words", _mutations(), ids=[m[0] for m in _mutations()])
def test_validator_rejects_each_malformed_variant(name, mutate, words):
    tasks = make_tasks()
    sub = copy.deepcopy(kaggle_sample(tasks))
    mutate(sub)
    problems = validate_submission(sub, tasks, file="sub.json")
    assert len(problems) == 1, problems
    for w in words:
        assert w in problems[0], (w, problems[0])
    assert problems[0].startswith("sub.json: task ")
    with pytest.raises(InputError) as e:
        check_submission(sub, tasks, file="sub.json")
    assert "\n" not in str(e.value) and words[0] in str(e.value)


def test_not_an_object_and_many_problems():
    tasks = make_tasks()
    assert "expected an object keyed by task id" in validate_submission([], tasks)[0]
    sub = kaggle_sample(tasks)
    sub.pop("aaaa0001")
    sub["bbbb0002"][0]["attempt_1"] = [[11]]
    problems = validate_submission(sub, tasks)
    assert len(problems) == 2
    with pytest.raises(InputError, match=r"\(and 1 more problems\)"):
        check_submission(sub, tasks)


def test_write_refuses_invalid_and_never_leaves_a_partial_file(tmp_path):
    tasks = make_tasks()
    path = tmp_path / "out" / "submission.json"
    bad = kaggle_sample(tasks)
    bad["aaaa0001"][0].pop("attempt_2")
    with pytest.raises(InputError, match="attempt_2"):
        write_submission(path, bad, tasks)
    assert not path.exists()
    good = fallback_submission(tasks)
    write_submission(path, good, tasks)
    before = path.read_bytes()
    with pytest.raises(InputError):
        write_submission(path, bad, tasks)
    assert path.read_bytes() == before  # the earlier valid file survives
    assert [p.name for p in path.parent.iterdir()] == ["submission.json"]  # no temp files left over


def test_validate_file_against_a_kaggle_challenges_file(tmp_path):
    tasks = make_tasks()
    challenges = {t.id: {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in t.train],
                         "test": [{"input": p.input.tolist()} for p in t.test]} for t in tasks}
    cpath = tmp_path / "arc-agi_test_challenges.json"
    cpath.write_text(json.dumps(challenges))
    assert [t.id for t in load_tasks(cpath)] == [t.id for t in tasks]
    spath = tmp_path / "submission.json"
    spath.write_text(json.dumps(kaggle_sample(tasks)))
    msg = validate_file(spath, str(cpath))
    assert msg.startswith("OK") and "3 tasks" in msg and "5 test inputs" in msg
    bad = kaggle_sample(tasks)
    bad["bbbb0002"] = bad["bbbb0002"][:1]
    spath.write_text(json.dumps(bad))
    with pytest.raises(InputError) as e:
        validate_file(spath, str(cpath))
    assert str(spath) in str(e.value) and "bbbb0002" in str(e.value)
    spath.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        validate_file(spath, str(cpath))
