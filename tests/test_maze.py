import numpy as np
import pytest

from arcsolver.data import dense_dataset, dihedral, maze
from arcsolver.runtime.errors import InputError


@pytest.mark.parametrize("side,hard", [(9, False), (13, True)])
def test_generated_answers_are_unique_shortest_paths(side, hard):
    q, a, L = maze.generate(40, side, seed=1, hard=hard)
    assert q.shape == (40, side, side)
    for qq, aa, ll in zip(q, a, L):
        assert maze.is_shortest_path(qq, aa)
        assert maze.shortest_path_length(qq) == ll == (aa == maze.PATH).sum() + 1
    if hard:
        assert L.min() > maze.default_min_path(side)
    assert np.array_equal(q, maze.generate(40, side, seed=1, hard=hard)[0])


def test_hard_30x30_filter():
    q, a, L = maze.generate(3, 30, seed=0, hard=True)
    assert L.min() > 110 and all(maze.is_shortest_path(x, y) for x, y in zip(q, a))


def test_checker_rejects_wrong_paths():
    q, a, _ = maze.generate(5, 11, seed=2)
    bad = a[0].copy()
    cells = np.argwhere(bad == maze.PATH)
    bad[tuple(cells[0])] = maze.OPEN  # a broken path
    assert not maze.is_shortest_path(q[0], bad)


def test_dihedral_augmentation_keeps_mazes_valid():
    q, a, L = maze.generate(16, 11, seed=3)
    rng = np.random.default_rng(0)
    x, y = maze.augment_tokens(q.reshape(16, -1), a.reshape(16, -1), rng, 11)
    X, Y = x.reshape(16, 11, 11), y.reshape(16, 11, 11)
    for xx, yy, ll in zip(X, Y, L):
        assert maze.is_shortest_path(xx, yy) and maze.shortest_path_length(xx) == ll
    assert (X != q).any(axis=(1, 2)).sum() >= 10


def test_csv_roundtrip_and_errors(tmp_path):
    q, a, _ = maze.generate(4, 9, seed=4)
    f = tmp_path / "m.csv"
    maze.write_csv(f, q, a)
    q2, a2, _ = maze.read_csv(f)
    assert np.array_equal(q2, q) and np.array_equal(a2, a)
    lines = f.read_text().splitlines()
    src, qs, ans, r = lines[1].split(",")
    cases = [(qs[:-1], ans, "question", "not a square"), (qs.replace("S", "x"), ans, "question", "character 'x'"),
             (qs, ans.replace("o", " ", 1), "answer", "shortest")]
    for q_, a_, field, msg in cases:
        f.write_text(f"source,question,answer,rating\n{src},{q_},{a_},0\n")
        with pytest.raises(InputError) as e:
            maze.read_csv(f)
        assert "row 2" in str(e.value) and field in str(e.value) and msg in str(e.value)


def test_csv_of_mixed_maze_sizes_is_one_line(tmp_path):
    # the CSV reader is shared with Sudoku (dense_dataset.read_csv); mazes of two sides once crashed in np.stack
    q7, a7, _ = maze.generate(2, 7, seed=1)
    q9, a9, _ = maze.generate(2, 9, seed=1)
    f = tmp_path / "m.csv"
    maze.write_csv(tmp_path / "a.csv", q7, a7)
    maze.write_csv(tmp_path / "b.csv", q9, a9)
    f.write_text((tmp_path / "a.csv").read_text() + "".join((tmp_path / "b.csv").read_text().splitlines(True)[1:]))
    with pytest.raises(InputError, match=r"mixed sizes \[7, 9\]") as e:
        maze.read_csv(f)
    assert str(f) in str(e.value)
    f.write_text("source,question,answer,rating\n")
    with pytest.raises(InputError, match="no mazes"):
        maze.read_csv(f)


def test_prepare(tmp_path):
    maze.prepare(tmp_path / "m", generate=30, side=9, hard=False, test_count=10, seed=0)
    meta = dense_dataset.read_meta(tmp_path / "m")
    assert meta["vocab_size"] == 6 and meta["seq_len"] == 81 and meta["augment"] == "dihedral"
    tr = dense_dataset.load_split(tmp_path / "m", "train")
    assert tr[0].shape == (30, 81) and tr[0].max() <= 4 and tr[1].max() == 5


def test_equivalence_key_is_dihedral_invariant_and_prepare_holds_out_whole_orbits(tmp_path):
    q, _, _ = maze.generate(10, 9, seed=2)
    for g in q:
        keys = {maze.equivalence_key(dihedral.transform(g, t)) for t in range(8)}
        assert keys == {maze.equivalence_key(g)}
    assert len({maze.equivalence_key(g) for g in q}) == 10
    maze.prepare(tmp_path / "m", generate=200, side=7, hard=False, test_count=100, seed=0)
    tr, te = dense_dataset.load_split(tmp_path / "m", "train"), dense_dataset.load_split(tmp_path / "m", "test")
    key = lambda r: maze.equivalence_key(r.reshape(7, 7))  # noqa: E731
    assert not ({key(r) for r in tr[0]} & {key(r) for r in te[0]})


def test_generator_knobs_min_path_and_perfect_mazes(tmp_path):
    side, cells = 9, 4
    q, a, L = maze.generate(30, side, seed=3, min_path=5, loop_frac=0.0)
    assert L.min() >= 5
    # loops=0 leaves the carved spanning tree: cells^2 rooms joined by cells^2 - 1 openings, nothing else open
    assert all(int((g != maze.WALL).sum()) == 2 * cells * cells - 1 for g in q)
    assert all(maze.is_shortest_path(x, y) for x, y in zip(q, a))
    maze.prepare(tmp_path / "m", generate=40, side=7, hard=False, min_path=3, loop_frac=0.0, test_count=20, seed=0)
    meta = dense_dataset.read_meta(tmp_path / "m")
    assert meta["generator"] == {"min_path": 3, "loops": 0.0}
    for split in ("train", "test"):
        qs = dense_dataset.load_split(tmp_path / "m", split)[0]
        assert min(maze.shortest_path_length(r.reshape(7, 7)) for r in qs) >= 3
    for kw, field in [({"min_path": 0}, "--min-path"), ({"loop_frac": 1.5}, "--loops")]:
        with pytest.raises(InputError, match=field):
            maze.prepare(tmp_path / "bad", generate=5, side=7, hard=False, test_count=5, **kw)
        assert not (tmp_path / "bad").exists()
