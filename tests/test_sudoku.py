import itertools

import numpy as np
import pytest

from arcsolver.data import dense_dataset, sudoku
from arcsolver.runtime.errors import InputError


def count_solutions(puzzle: np.ndarray, limit: int = 2) -> int:
    """Solutions of `puzzle`, counted by the generator's own search up to `limit` (what uniqueness means to it)."""
    side = puzzle.shape[0]
    br, bc = sudoku.BOXES[side]
    g = puzzle.reshape(-1).astype(np.int64).copy()
    return int(sudoku._search(g, side, br, bc, limit, 0, np.zeros(side * side, np.int64))[0])


def brute_force_count(p: np.ndarray) -> int:
    """Independent check for 4x4: try every completion row by row."""
    rows = []
    for r in range(4):
        opts = [perm for perm in itertools.permutations(range(1, 5))
                if all(p[r, c] in (0, perm[c]) for c in range(4))]
        rows.append(opts)
    count = 0
    for g in itertools.product(*rows):
        g = np.array(g)
        if sudoku.is_valid_solution(g):
            count += 1
    return count


@pytest.mark.parametrize("side", [4, 6, 9])
def test_generated_puzzles_are_valid_unique_and_seeded(side):
    n = 30 if side == 9 else 60
    p, s, d = sudoku.generate(n, side, seed=3)
    assert p.shape == (n, side, side) and len({x.tobytes() for x in p}) == n
    for pp, ss in zip(p, s):
        assert sudoku.is_valid_solution(ss)
        assert ((pp == 0) | (pp == ss)).all() and (pp == 0).any()
        assert count_solutions(pp) == 1
        sol, _ = sudoku.solve(pp)
        assert np.array_equal(sol, ss)
    p2, s2, d2 = sudoku.generate(n, side, seed=3)
    assert np.array_equal(p, p2) and np.array_equal(d, d2)
    assert not np.array_equal(p, sudoku.generate(n, side, seed=4)[0])
    if side == 4:
        assert all(brute_force_count(pp) == 1 for pp in p[:20])


def test_difficulty_is_backtrack_count():
    p, s, _ = sudoku.generate(1, 9, seed=1)
    full_minus_one = s[0].copy()
    full_minus_one[0, 0] = 0
    assert sudoku.solve(full_minus_one)[1] == 0  # a naked single: no dead end
    _, _, d = sudoku.generate(40, 9, seed=5)
    assert d.max() > 0
    hard = sudoku.generate(5, 9, seed=5, min_difficulty=int(np.median(d)))[2]
    assert hard.min() >= int(np.median(d))
    two = np.zeros((4, 4), np.uint8)
    assert count_solutions(two) == 2  # capped at the limit


@pytest.mark.parametrize("side", [4, 6, 9])
def test_augmentation_keeps_validity_and_varies(side):
    p, s, _ = sudoku.generate(40, side, seed=2)
    rng = np.random.default_rng(0)
    x, y = sudoku.augment_tokens(sudoku.encode(p), sudoku.encode(s), rng, side, sudoku.BOXES[side])
    P, S = sudoku.decode(x, side), sudoku.decode(y, side)
    for pp, ss in zip(P, S):
        assert sudoku.is_valid_solution(ss) and ((pp == 0) | (pp == ss)).all()
        assert count_solutions(pp) == 1
    assert (P != p).any(axis=(1, 2)).mean() > 0.9  # almost every row really changed
    assert (x == 1).sum() == (sudoku.encode(p) == 1).sum()  # blanks preserved


def test_csv_roundtrip_and_errors(tmp_path):
    p, s, _ = sudoku.generate(5, 9, seed=0)
    f = tmp_path / "s.csv"
    sudoku.write_csv(f, p, s)
    q, a, _ = sudoku.read_csv(f)
    assert np.array_equal(q, p) and np.array_equal(a, s)
    good_q = "".join("." if x == 0 else str(x) for x in p[0].reshape(-1))
    good_a = "".join(str(x) for x in s[0].reshape(-1))
    bad_a = ("2" if good_a[0] == "1" else "1") + good_a[1:]
    cases = [
        (good_q[:80], good_a, "question", "80 characters"),
        (good_q[:-1] + "x", good_a, "question", "character 'x'"),
        (good_q, bad_a, "answer", "not a complete valid Sudoku"),
    ]
    for q_, a_, field, msg in cases:
        f.write_text(f"source,question,answer,rating\nx,{q_},{a_},0\n")
        with pytest.raises(InputError) as e:
            sudoku.read_csv(f)
        assert str(f) in str(e.value) and "row 2" in str(e.value) and field in str(e.value) and msg in str(e.value)
    # an answer that is a valid Sudoku but contradicts a given
    other = sudoku.generate(2, 9, seed=9)[1][1]
    f.write_text(f"source,question,answer,rating\nx,{good_q},{''.join(map(str, other.reshape(-1)))},0\n")
    with pytest.raises(InputError, match="differs from a given"):
        sudoku.read_csv(f)


def test_prepare_writes_dense_dataset_deterministically(tmp_path):
    for name in ("a", "b"):
        sudoku.prepare(tmp_path / name, generate=50, side=4, test_count=20, seed=1)
    meta = dense_dataset.read_meta(tmp_path / "a")
    assert meta["kind"] == "sudoku" and meta["seq_len"] == 16 and meta["vocab_size"] == 11 and meta["box"] == [2, 2]
    tr, te = dense_dataset.load_split(tmp_path / "a", "train"), dense_dataset.load_split(tmp_path / "a", "test")
    assert tr[0].shape == (50, 16) and te[0].shape == (20, 16)
    # held-out puzzles are unseen, not even as an augmentation of a training puzzle
    key = lambda r: sudoku.equivalence_key(sudoku.decode(r[None], 4)[0])  # noqa: E731
    assert not ({key(r) for r in tr[0]} & {key(r) for r in te[0]})
    for f in ("train_inputs.npy", "test_labels.npy", "meta.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_prepare_cli(tmp_path):
    from click.testing import CliRunner
    from arcsolver.cli import main
    r = CliRunner().invoke(main, ["prepare", "sudoku", "--generate", "30", "--size", "4", "--test-count", "10",
                                  "--out", str(tmp_path / "s")])
    assert r.exit_code == 0 and "sudoku, seq_len 16" in r.output
    r = CliRunner().invoke(main, ["prepare", "sudoku", "--size", "4", "--out", str(tmp_path / "t")])
    assert r.exit_code == 2 and "exactly one of --generate N or --csv FILE" in r.stderr
    r = CliRunner().invoke(main, ["prepare", "maze", "--csv", str(tmp_path / "none.csv"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "none.csv: file not found" in r.stderr


@pytest.mark.parametrize("side", [4, 6])
def test_equivalence_key_is_invariant_under_augmentation_and_separates_others(side):
    """Every training augmentation of a puzzle has the puzzle's key; different 6x6 puzzles do not."""
    p, _, _ = sudoku.generate(20, side, seed=3)
    box = sudoku.BOXES[side]
    rng = np.random.default_rng(0)
    tok = sudoku.encode(p)
    for _ in range(5):
        aug, _ = sudoku.augment_tokens(tok, tok, rng, side, box)
        assert [sudoku.equivalence_key(g) for g in sudoku.decode(aug, side)] == \
            [sudoku.equivalence_key(g) for g in p]
    distinct = len({sudoku.equivalence_key(g) for g in p})
    assert distinct == 20 if side == 6 else 1 < distinct < 20  # 4x4: few classes, random puzzles collide


def test_4x4_held_out_set_cannot_outgrow_the_equivalence_classes():
    """4x4 has few puzzle classes: asking for a held-out set that training augmentations do not cover fails with a
    clear error instead of silently testing on seen puzzles."""
    tp, _, _ = sudoku.generate(3000, 4, seed=0)
    exclude = {sudoku.equivalence_key(g) for g in tp}
    with pytest.raises(InputError, match="not augmentations of the training puzzles"):
        sudoku.generate(1000, 4, seed=1, exclude=exclude, max_tries=20000)
