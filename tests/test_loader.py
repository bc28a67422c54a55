"""The on-the-fly batch loader: content, translation, sharding, exact resume, determinism, test split order."""
import numpy as np
import pytest

from arcsolver.data import dihedral, encoding
from arcsolver.data.arc_dataset import TaskSet, build
from arcsolver.data.arc_tasks import load_tasks
from arcsolver.data.loader import ArcSource, PuzzleLoader

from conftest import BUNDLED


@pytest.fixture(scope="module")
def arc_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("arc") / "ds"
    tasks = load_tasks(BUNDLED)
    build(d, [TaskSet("train", tasks[:6]), TaskSet("eval", tasks[6:], test_set=True)], num_aug=20, seed=5, canvas=10)
    return d


def untranslate(tokens: np.ndarray, side: int) -> np.ndarray:
    """Shift a painted canvas so its content starts at the top-left (PAD-filled)."""
    t = tokens.reshape(side, side)
    rows, cols = np.nonzero(t)
    out = np.zeros_like(t)
    win = t[rows.min():, cols.min():]
    out[:win.shape[0], :win.shape[1]] = win
    return out.reshape(-1)


def test_training_rows_decode_to_augmented_examples(arc_dir):
    src = ArcSource(arc_dir)
    store = src.store
    loader = PuzzleLoader(src, global_batch_size=64, seed=1)
    batch = next(iter(loader))
    ver, ex, keep = loader._items(0, 64)
    translated = 0
    for b in range(64):
        pid = int(batch["puzzle_identifiers"][b])
        assert pid == ver[b] + 1
        ti, tid, cmap = store.version(pid)
        inp = batch["inputs"][b].numpy()
        lab = batch["labels"][b].numpy()
        # labels: PAD positions are ignored, everything else matches the input's placement
        assert ((lab == -100) == (np.where(lab < 0, 0, lab) == 0)).all()
        lab_tokens = np.where(lab < 0, 0, lab).astype(np.uint8)
        if keep[b]:
            assert inp[0] != 0  # the kept example sits at the top-left
        translated += inp.reshape(10, 10)[0].max() == 0 or inp.reshape(10, 10)[:, 0].max() == 0
        gi = encoding.crop(untranslate(inp, 10))
        go = encoding.crop(untranslate(lab_tokens, 10))
        e = int(ex[b])
        expect_in = store.grid(int(store.a["ex_in"][e]))
        expect_out = store.grid(int(store.a["ex_out"][e]))
        inv = np.argsort(cmap).astype(np.uint8)
        assert np.array_equal(inv[dihedral.inverse(gi, tid)], expect_in)
        assert np.array_equal(inv[dihedral.inverse(go, tid)], expect_out)
    assert translated > 10  # most rows are translated


def test_an_epoch_visits_every_group_once_with_all_its_examples(arc_dir):
    src = ArcSource(arc_dir)
    ver, ex, keep = src.epoch(123)
    a = src.a
    assert len(ver) == src.epoch_len
    tasks_seen = a["ver_task"][ver]
    for t in range(len(src.store.task_ids)):
        rows = np.nonzero(tasks_seen == t)[0]
        expect = a["train_ex"][a["task_train"][t]:a["task_train"][t + 1]]
        assert sorted(ex[rows].tolist()) == sorted(expect.tolist())
        assert len(set(ver[rows].tolist())) == 1  # one version per draw
        assert rows.max() - rows.min() + 1 == len(rows)  # contiguous
        assert keep[rows].sum() == 1


@pytest.mark.parametrize("world", [2, 4])
def test_shards_together_equal_one_process(arc_dir, world):
    B = 32
    shards = [PuzzleLoader(arc_dir, global_batch_size=B, seed=9, rank=r, world_size=world) for r in range(world)]
    its = [iter(s) for s in shards]
    single_it = iter(PuzzleLoader(arc_dir, global_batch_size=B, seed=9))
    for _ in range(5):  # crosses epoch boundaries (48 train examples per epoch)
        whole = next(single_it)
        parts = [next(it) for it in its]
        for k in whole:
            assert np.array_equal(whole[k].numpy(), np.concatenate([p[k].numpy() for p in parts]))


def test_resume_continues_exactly_and_seed_determines_stream(arc_dir):
    a = PuzzleLoader(arc_dir, global_batch_size=16, seed=3)
    it = iter(a)
    for _ in range(7):
        next(it)
    state = a.state_dict()
    expected = [next(it) for _ in range(3)]
    b = PuzzleLoader(arc_dir, global_batch_size=16, seed=0)
    b.load_state_dict(state)
    it_b = iter(b)
    got = [next(it_b) for _ in range(3)]
    for x, y in zip(expected, got):
        for k in x:
            assert np.array_equal(x[k].numpy(), y[k].numpy())
    c = next(iter(PuzzleLoader(arc_dir, global_batch_size=16, seed=4)))
    d = next(iter(PuzzleLoader(arc_dir, global_batch_size=16, seed=3)))
    assert not np.array_equal(c["inputs"].numpy(), d["inputs"].numpy())


def test_test_split_in_order_top_left_and_padded(arc_dir):
    src = ArcSource(arc_dir)
    store = src.store
    loader = PuzzleLoader(src, "test", global_batch_size=64, rank=1, world_size=2)
    n = loader.test_size()
    ver_all, ex_all = src.test_items()
    seen = []
    for batch in loader:
        idx = batch["index"].numpy()
        for b, i in enumerate(idx):
            if i < 0:
                assert batch["puzzle_identifiers"][b] == 0 and (batch["inputs"][b] == 0).all()
                assert (batch["labels"][b] == -100).all()
                continue
            seen.append(i)
            pid = int(batch["puzzle_identifiers"][b])
            ti, tid, cmap = store.version(pid)
            g = encoding.crop(batch["inputs"][b].numpy(), strict=True)  # test rows are never translated
            expect = store.grid(int(store.a["ex_in"][ex_all[i]]))
            assert np.array_equal(np.argsort(cmap).astype(np.uint8)[dihedral.inverse(g, tid)], expect)
    # rank 1 of 2 sees the second half of every global batch of 64
    expect_idx = [i for s in range(0, n, 64) for i in range(s + 32, min(s + 64, n))]
    assert seen == expect_idx


def test_batch_size_must_divide(arc_dir):
    with pytest.raises(ValueError, match="not divisible"):
        PuzzleLoader(arc_dir, global_batch_size=30, world_size=4)


def test_mixing_weights_visit_each_task_of_a_set_that_many_times_an_epoch(tmp_path):
    from click.testing import CliRunner
    from arcsolver.cli import main
    tasks = load_tasks(BUNDLED)
    for name, part in (("a", tasks[:3]), ("b", tasks[3:5])):
        (tmp_path / name).mkdir()
        for t in part:
            (tmp_path / name / f"{t.id}.json").write_text(__import__("json").dumps(t.to_json()))
    args = ["prepare", "arc", "--train", str(tmp_path / "a"), "--train", str(tmp_path / "b"), "--num-aug", "4",
            "--out", str(tmp_path / "d")]
    bad = CliRunner().invoke(main, [*args, "--weight", f"{tmp_path / 'c'}=2"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--weight" in bad.stderr
    assert not (tmp_path / "d").exists()
    assert CliRunner().invoke(main, [*args, "--weight", f"{tmp_path / 'a'}=3"]).exit_code == 0
    src = ArcSource(tmp_path / "d")
    ver, ex, _ = src.epoch(11)
    a = src.store.a
    n_train = np.diff(a["task_train"])
    assert src.epoch_len == len(ver) == 3 * n_train[:3].sum() + n_train[3:].sum()
    draws = np.bincount(a["ex_task"][ex], minlength=5) // n_train  # examples drawn / examples per visit
    assert draws.tolist() == [3, 3, 3, 1, 1]
    assert len(set(ver[a["ex_task"][ex] < 3].tolist())) > 3  # each visit draws its own version
