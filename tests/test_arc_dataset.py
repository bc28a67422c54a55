"""Augmentation, dedup, routing, naming and determinism of the prepared ARC dataset."""
import hashlib
import json

import numpy as np
import pytest

from arcsolver.data import colors, dihedral
from arcsolver.data.arc_dataset import ArcStore, TaskSet, build, parse_version_name
from arcsolver.data.arc_tasks import load_tasks, parse_task

from conftest import BUNDLED, random_task


def mk(task_id, obj):
    return parse_task(obj, task_id=task_id, file="mem")


def content_key(task, tid, cmap):
    """Independent (pure numpy) content of an augmented task, example order ignored as in the reference."""
    keys = []
    for p in task.train + task.test:
        a = dihedral.transform(cmap[p.input], tid)
        b = dihedral.transform(cmap[p.output], tid)
        keys.append(hashlib.sha256(repr((a.shape, a.tobytes(), b.shape, b.tobytes())).encode()).hexdigest())
    return tuple(sorted(keys))


def versions_of(store, ti):
    a = store.a
    return [(int(a["ver_tid"][v]), np.array(a["ver_map"][v])) for v in range(a["task_ver"][ti], a["task_ver"][ti + 1])]


def test_dedup_removes_duplicates_and_respects_caps(tmp_path, rng):
    one_colour = mk("one", {"train": [{"input": [[0, 1, 0], [1, 1, 0]], "output": [[1, 0], [0, 0], [1, 1]]},
                                      {"input": [[1, 0, 0]], "output": [[0], [1], [1]]}],
                            "test": [{"input": [[1, 1], [0, 1]], "output": [[0, 1]]}]})
    symmetric = mk("sym", {"train": [{"input": [[3, 3], [3, 3]], "output": [[3]]}], "test": [{"input": [[3]], "output": [[3, 3, 3], [3, 3, 3], [3, 3, 3]]}]})
    rich = [mk(f"r{i}", random_task(rng, colors=(1, 2, 3, 4, 5, 6))) for i in range(4)]
    build(tmp_path / "d", [TaskSet("s", [one_colour, symmetric] + rich)], num_aug=200, seed=7)
    store = ArcStore(tmp_path / "d")
    for ti in range(len(store.task_ids)):
        task = store.task(ti)
        vers = versions_of(store, ti)
        assert vers[0][0] == 0 and np.array_equal(vers[0][1], colors.IDENTITY)  # version 0 is the original
        keys = [content_key(task, t, m) for t, m in vers]
        assert len(set(keys)) == len(keys), f"duplicate versions in {task.id}"
        assert len(vers) <= 201
        assert all(m[0] == 0 for _, m in vers)  # black fixed
    n = dict(zip(store.task_ids, np.diff(store.a["task_ver"])))
    assert n["one"] == 72  # 8 transforms x 9 images of colour 1: every one found within 5x200 trials
    assert n["sym"] <= 9  # all transforms coincide; only the colour of 3 varies
    assert all(n[f"r{i}"] == 201 for i in range(4))


def test_all_colors_option_moves_black(tmp_path, rng):
    t = mk("t", random_task(rng))
    build(tmp_path / "d", [TaskSet("s", [t])], num_aug=50, seed=1, all_colors=True)
    maps = ArcStore(tmp_path / "d").a["ver_map"]
    assert (maps[:, 0] != 0).any()


def test_split_routing_and_shared_puzzle_ids(tmp_path, rng):
    tr = [mk("tr1", random_task(rng, n_train=3, n_test=2))]
    ev = [mk("ev1", random_task(rng, n_train=2, n_test=2))]
    build(tmp_path / "d", [TaskSet("train", tr), TaskSet("eval", ev, test_set=True)], num_aug=5)
    s = ArcStore(tmp_path / "d")
    a = s.a
    kind = a["ex_kind"]
    tr_ex = a["train_ex"][a["task_train"][0]:a["task_train"][1]]
    ev_train = a["train_ex"][a["task_train"][1]:a["task_train"][2]]
    ev_test = a["test_ex"][a["task_test"][1]:a["task_test"][2]]
    assert len(tr_ex) == 5 and sorted(kind[tr_ex].tolist()) == [0, 0, 0, 1, 1]  # demos + tests of a training set
    assert len(ev_train) == 2 and (kind[ev_train] == 0).all()  # only demos of an evaluation set are trained on
    assert len(ev_test) == 2 and (kind[ev_test] == 1).all()
    assert a["task_test"][1] == 0  # nothing of the training set in the test split
    assert s.meta["counts"]["test_examples"] == 2 * 6
    from arcsolver.data.loader import ArcSource
    ver, ex = ArcSource(tmp_path / "d").test_items()
    assert set(ver.tolist()) == set(range(a["task_ver"][1], a["task_ver"][2]))  # every version of ev1, same ids


def test_names_parse_back_and_match_reference_format(tmp_path, rng):
    build(tmp_path / "d", [TaskSet("s", [mk("abc", random_task(rng))])], num_aug=20)
    s = ArcStore(tmp_path / "d")
    ids = s.identifiers
    assert ids[0] == "<blank>" and ids[1] == "abc" and len(ids) == s.num_puzzle_identifiers
    for pid in range(2, len(ids)):
        task, tid, m = parse_version_name(ids[pid])
        ti, tid2, m2 = s.version(pid)
        assert task == "abc" and tid == tid2 and np.array_equal(m, m2)
        assert ids[pid] == f"abc|||t{tid}|||{''.join(map(str, m))}"


def test_same_seed_byte_identical_other_seed_differs(tmp_path):
    sets = [TaskSet("b", load_tasks(BUNDLED), test_set=True)]
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        build(tmp_path / name, sets, num_aug=30, seed=seed)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "arrays/ver_map.npy").read_bytes() != (tmp_path / "c" / "arrays/ver_map.npy").read_bytes()


def test_versions_of_a_task_do_not_depend_on_other_tasks(tmp_path, rng):
    t1, t2 = mk("t1", random_task(rng)), mk("t2", random_task(rng))
    build(tmp_path / "a", [TaskSet("s", [t1])], num_aug=10)
    build(tmp_path / "b", [TaskSet("s", [t2, t1])], num_aug=10)
    va = versions_of(ArcStore(tmp_path / "a"), 0)
    vb = versions_of(ArcStore(tmp_path / "b"), 1)
    assert all(x[0] == y[0] and np.array_equal(x[1], y[1]) for x, y in zip(va, vb))


def test_canvas_too_small_is_an_input_error(tmp_path, rng):
    from arcsolver.runtime.errors import InputError
    t = mk("big", {"train": [{"input": [[1] * 12], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]})
    with pytest.raises(InputError, match=r"train\[0\].input: grid 1x12 does not fit the 10x10 canvas"):
        build(tmp_path / "d", [TaskSet("s", [t])], num_aug=2, canvas=10)
    assert not (tmp_path / "d").exists()


def test_format_1_datasets_still_load_and_name_their_versions_alike(tmp_path):
    from arcsolver.data.checks import check_dataset
    from arcsolver.data.loader import PuzzleLoader
    from arcsolver.runtime.errors import InputError
    build(tmp_path / "d", [TaskSet("s", load_tasks(BUNDLED)[:3], test_set=True)], num_aug=5, seed=2, canvas=30)
    computed = ArcStore(tmp_path / "d").identifiers
    assert not (tmp_path / "d" / "identifiers.json").exists() and computed[0] == "<blank>"
    # The same folder as format 1 wrote it: identifiers.json beside the arrays, which is then what names the rows.
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    (tmp_path / "d" / "meta.json").write_text(json.dumps(dict(meta, format="arcsolver-arc-1")))
    names = tmp_path / "d" / "identifiers.json"
    with pytest.raises(InputError, match="identifiers.json"):
        check_dataset(tmp_path / "d")  # format 1 without its names file is incomplete
    names.write_text(json.dumps(["<blank>"] + [f"x{i}" for i in range(len(computed) - 1)]))
    check_dataset(tmp_path / "d")
    assert ArcStore(tmp_path / "d").identifiers[1] == "x0"
    assert len(next(iter(PuzzleLoader(tmp_path / "d", "train", global_batch_size=4)))["inputs"]) == 4
