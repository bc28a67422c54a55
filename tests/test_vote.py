import math

import numpy as np
import orjson
import pytest

from arcsolver.data import colors, dihedral
from arcsolver.data.encoding import EOS, PAD, encode_grid
from arcsolver.inference.vote import VoteBook, candidates_json, undo_batch


def augment_canvas(grid: np.ndarray, tid: int, cmap: np.ndarray) -> np.ndarray:
    """What a perfect model outputs for the augmented version (tid, cmap) of a task whose answer is `grid`."""
    return encode_grid(colors.apply(dihedral.transform(grid, tid), cmap))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


SHAPES = [(1, 1), (30, 30), (1, 30), (30, 1), (3, 7), (7, 3), (29, 30), (2, 2), (13, 17)]


def test_undo_inverts_every_transform_and_colour_map(rng):
    grids, tokens, tids, cmaps = [], [], [], []
    for h, w in SHAPES + [(int(rng.integers(1, 31)), int(rng.integers(1, 31))) for _ in range(20)]:
        for tid in range(8):
            for all_colors in (False, True):
                g = rng.integers(0, 10, size=(h, w)).astype(np.uint8)
                m = colors.random_map(rng, all_colors=all_colors)
                grids.append(g)
                tokens.append(augment_canvas(g, tid, m))
                tids.append(tid)
                cmaps.append(m)
    und = undo_batch(np.stack(tokens), np.array(tids), np.stack(cmaps))
    assert und.valid.all()
    for k, g in enumerate(grids):
        assert und.grid(k).shape == g.shape
        np.testing.assert_array_equal(und.grid(k), g)
        assert (und.grids[k][g.shape[0]:, :] == 0).all() and (und.grids[k][:, g.shape[1]:] == 0).all()
    # Same grid through different augmentations -> same hash; the shape is part of the hash.
    for k, g in enumerate(grids):
        same = [j for j, o in enumerate(grids) if o.shape == g.shape and (o == g).all()]
        assert all((und.hashes[j] == und.hashes[k]).all() for j in same)
    assert len({tuple(h) for h in und.hashes.tolist()}) == len({(g.shape, g.tobytes()) for g in grids})


def test_hash_distinguishes_shape_and_single_cells():
    grids = [np.zeros((1, 4), np.uint8), np.zeros((2, 2), np.uint8), np.zeros((4, 1), np.uint8),
             np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), np.zeros((17, 1), np.uint8),
             np.zeros((1, 17), np.uint8)]
    base = np.random.default_rng(5).integers(0, 10, size=(30, 30)).astype(np.uint8)
    for i, j in [(0, 0), (29, 29), (15, 3), (0, 29)]:
        g = base.copy()
        g[i, j] = (g[i, j] + 1) % 10
        grids.append(g)
    grids.append(base)
    ident = colors.IDENTITY
    und = undo_batch(np.stack([encode_grid(g) for g in grids]), np.zeros(len(grids), int),
                     np.stack([ident] * len(grids)))
    assert len({tuple(h) for h in und.hashes.tolist()}) == len(grids)


def test_same_answer_from_every_augmentation_gets_one_hash(rng):
    g = rng.integers(0, 10, size=(5, 9)).astype(np.uint8)
    tids = np.arange(8).repeat(3)
    cmaps = np.stack([colors.random_map(rng, all_colors=True) for _ in tids])
    und = undo_batch(np.stack([augment_canvas(g, int(t), m) for t, m in zip(tids, cmaps)]), tids, cmaps)
    assert len({tuple(h) for h in und.hashes.tolist()}) == 1


def test_strict_rejects_broken_eos_border_and_loose_crop_does_not():
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) % 10
    ok = encode_grid(g).reshape(30, 30)
    broken_row = ok.copy()
    broken_row[3, 2] = PAD  # a hole in the EOS row under the grid
    broken_col = ok.copy()
    broken_col[1, 4] = 5  # a colour where the EOS column should be
    no_grid = np.zeros((30, 30), np.uint8)
    no_grid[0, :4] = EOS
    batch = np.stack([ok, broken_row, broken_col, no_grid]).reshape(4, 900)
    ids, maps = np.zeros(4, int), np.stack([colors.IDENTITY] * 4)

    strict = undo_batch(batch, ids, maps, strict=True)
    assert strict.valid.tolist() == [True, False, False, False]
    assert strict.grid(1) is None and (strict.hashes[1] == 0).all() and tuple(strict.shapes[1]) == (0, 0)

    loose = undo_batch(batch, ids, maps, strict=False)
    assert loose.valid.tolist() == [True, True, True, False]
    np.testing.assert_array_equal(loose.grid(1), g)  # the reference crop ignores the hole
    np.testing.assert_array_equal(loose.grid(2), g)  # ...and the stray colour (widths can only shrink)


def test_smaller_canvas(rng):
    grids = [rng.integers(0, 10, size=(h, w)).astype(np.uint8) for h, w in [(1, 1), (10, 10), (3, 9), (9, 2)]]
    tids = np.array([1, 3, 6, 7])
    cmaps = np.stack([colors.random_map(rng) for _ in grids])
    tokens = np.stack([encode_grid(colors.apply(dihedral.transform(g, int(t)), m), canvas=10)
                       for g, t, m in zip(grids, tids, cmaps)])
    und = undo_batch(tokens, tids, cmaps)
    assert und.grids.shape == (4, 10, 10)
    for k, g in enumerate(grids):
        np.testing.assert_array_equal(und.grid(k), g)


def test_full_canvas_needs_no_eos_and_token_dtype_does_not_matter(rng):
    g = rng.integers(0, 10, size=(30, 30)).astype(np.uint8)
    t = augment_canvas(g, 6, colors.IDENTITY)
    for dtype in (np.uint8, np.int32, np.int64):
        und = undo_batch(t[None].astype(dtype), np.array([6]), colors.IDENTITY[None])
        np.testing.assert_array_equal(und.grid(0), g)


def test_bad_transform_or_colour_map_is_a_caller_error():
    t = encode_grid(np.ones((2, 2), np.uint8))[None]
    with pytest.raises(ValueError, match="0..7"):
        undo_batch(t, np.array([8]), colors.IDENTITY[None])
    bad = colors.IDENTITY.copy()
    bad[3] = 4
    with pytest.raises(ValueError, match="permutation"):
        undo_batch(t, np.array([0]), bad[None])
    with pytest.raises(ValueError, match="canvases"):
        undo_batch(t, np.array([0, 1]), colors.IDENTITY[None])


def test_empty_batch():
    und = undo_batch(np.zeros((0, 900), np.uint8), np.zeros(0, int), np.zeros((0, 10), np.uint8))
    assert und.grids.shape == (0, 30, 30) and und.valid.shape == (0,)
    book = VoteBook()
    book.add([], np.zeros(0, int), np.zeros((0, 900), np.uint8), np.zeros(0, int), np.zeros((0, 10), np.uint8),
             np.zeros(0))
    assert book.keys() == []


# ---------------------------------------------------------------------------------------------------------------
# VoteBook


def _batch(rng, answers):
    """answers: list of (task, test index, grid or None for an invalid canvas, q logit) -> add() arguments."""
    tokens, tids, cmaps = [], [], []
    for _, _, g, _ in answers:
        tid = int(rng.integers(0, 8))
        m = colors.random_map(rng)
        if g is None:
            tokens.append(np.zeros(900, np.uint8))  # PAD at the top-left: no grid
        else:
            tokens.append(augment_canvas(g, tid, m))
        tids.append(tid)
        cmaps.append(m)
    return ([a[0] for a in answers], np.array([a[1] for a in answers]), np.stack(tokens), np.array(tids),
            np.stack(cmaps), np.array([a[3] for a in answers], dtype=np.float32))


A = np.array([[1, 2], [3, 4]], np.uint8)
B = np.array([[1, 2, 3]], np.uint8)
C = np.array([[7]], np.uint8)
D = np.array([[1, 2], [3, 5]], np.uint8)


def test_votes_counted_and_ties_broken_by_mean_q(rng):
    book = VoteBook()
    # t1 test 0: A x3 (low q), B x3 (high q), C x1 (very high q), 2 invalid. B and A tie on votes; B's mean q wins.
    answers = [("t1", 0, A, -1.0), ("t1", 0, B, 2.0), ("t1", 0, A, -2.0), ("t1", 0, None, 5.0),
               ("t1", 0, B, 1.0), ("t1", 0, C, 9.0), ("t1", 0, A, 0.0), ("t1", 0, B, 0.5), ("t1", 0, None, 0.0)]
    book.add(*_batch(rng, answers))
    ranked = book.ranked("t1", 0)
    assert [c.votes for c in ranked] == [3, 3, 1]
    np.testing.assert_array_equal(ranked[0].grid, B)
    np.testing.assert_array_equal(ranked[1].grid, A)
    np.testing.assert_array_equal(ranked[2].grid, C)
    assert ranked[0].mean_q == pytest.approx((sigmoid(2.0) + sigmoid(1.0) + sigmoid(0.5)) / 3, rel=1e-6)
    assert ranked[1].mean_q == pytest.approx((sigmoid(-1.0) + sigmoid(-2.0) + sigmoid(0.0)) / 3, rel=1e-6)
    assert ranked[2].mean_q == pytest.approx(sigmoid(9.0), rel=1e-6)
    assert book.counts("t1", 0) == (9, 2)
    assert book.n_predictions == 9 and book.n_invalid == 2


def test_exact_ties_keep_first_seen_order(rng):
    grids = [np.full((1, k), k % 10, np.uint8) for k in range(1, 25)]
    order = rng.permutation(len(grids))
    book = VoteBook()
    book.add(*_batch(rng, [("t", 0, grids[k], 0.0) for k in order]))
    assert [c.grid.shape[1] for c in book.ranked("t", 0)] == [k + 1 for k in order]


def test_more_votes_beat_higher_confidence_and_batches_accumulate(rng):
    book = VoteBook()
    book.add(*_batch(rng, [("t", 0, D, 8.0), ("t", 0, A, -3.0)]))
    book.add(*_batch(rng, [("t", 0, A, -3.0), ("t", 0, D, 8.0), ("t", 0, A, -3.0)]))
    ranked = book.ranked("t", 0)
    assert [c.votes for c in ranked] == [3, 2]
    np.testing.assert_array_equal(ranked[0].grid, A)  # one cell away from D, still a different candidate


def test_test_inputs_and_tasks_are_kept_apart(rng):
    book = VoteBook()
    book.add(*_batch(rng, [("t1", 0, A, 0.0), ("t1", 1, B, 0.0), ("t1", 1, B, 0.0), ("t2", 0, A, 0.0),
                           ("t2", 0, C, 1.0), ("t1", 0, A, 0.0), ("t1", 1, None, 0.0)]))
    assert book.keys() == [("t1", 0), ("t1", 1), ("t2", 0)]
    assert [(c.votes, c.grid.tolist()) for c in book.ranked("t1", 0)] == [(2, A.tolist())]
    assert [(c.votes, c.grid.tolist()) for c in book.ranked("t1", 1)] == [(2, B.tolist())]
    assert [(c.votes, c.grid.tolist()) for c in book.ranked("t2", 0)] == [(1, C.tolist()), (1, A.tolist())]
    assert book.counts("t1", 1) == (3, 1)
    assert book.ranked("t3", 0) == [] and book.ranked("t1", 2) == []
    assert book.task_ids() == ["t1", "t2"]


def test_only_invalid_predictions_give_no_candidates(rng):
    book = VoteBook()
    book.add(*_batch(rng, [("t", 0, None, 0.0), ("t", 0, None, 1.0)]))
    assert book.ranked("t", 0) == [] and book.counts("t", 0) == (2, 2)


def test_books_are_separate_unless_merged_explicitly(rng):
    ckpt1, ckpt2 = VoteBook(label="step_1"), VoteBook(label="step_2")
    ckpt1.add(*_batch(rng, [("t", 0, A, 0.0), ("t", 0, A, 0.0)]))
    ckpt2.add(*_batch(rng, [("t", 0, B, 0.0), ("t", 0, B, 0.0), ("t", 0, B, 0.0), ("t", 0, A, 0.0)]))
    assert [c.votes for c in ckpt1.ranked("t", 0)] == [2]  # nothing leaked from the other checkpoint
    both = ckpt1.merge(ckpt2)
    assert both.label == "step_1+step_2"
    # An exact tie (votes and mean q): first seen wins, and merge reads self before other.
    assert [(c.votes, c.grid.tolist()) for c in both.ranked("t", 0)] == [(3, A.tolist()), (3, B.tolist())]
    assert both.counts("t", 0) == (6, 0)
    assert [c.votes for c in ckpt1.ranked("t", 0)] == [2] and [c.votes for c in ckpt2.ranked("t", 0)] == [3, 1]


def test_q_defaults_and_extreme_logits(rng):
    book = VoteBook()
    args = list(_batch(rng, [("t", 0, A, 0.0), ("t", 0, B, 0.0)]))
    args[-1] = None
    book.add(*args)
    assert all(c.mean_q == 0.5 for c in book.ranked("t", 0))
    book2 = VoteBook()
    args = list(_batch(rng, [("t", 0, A, -1e4), ("t", 0, B, 1e4)]))
    book2.add(*args)
    assert [c.mean_q for c in book2.ranked("t", 0)] == [1.0, 0.0]


def test_candidates_json_is_serialisable_and_complete(rng):
    book = VoteBook()
    book.add(*_batch(rng, [("t1", 0, A, 0.0), ("t1", 0, A, 1.0), ("t1", 0, B, 0.0), ("t1", 1, C, 0.0),
                           ("t1", 1, None, 0.0)]))
    data = orjson.loads(orjson.dumps(candidates_json(book)))
    assert list(data) == ["t1"]
    e0, e1 = data["t1"]
    assert e0["test_index"] == 0 and e0["n_predictions"] == 3 and e0["n_invalid"] == 0
    assert [(c["grid"], c["votes"]) for c in e0["candidates"]] == [(A.tolist(), 2), (B.tolist(), 1)]
    assert e0["candidates"][0]["mean_q"] == pytest.approx((0.5 + sigmoid(1.0)) / 2, abs=1e-6)
    assert e1["test_index"] == 1 and e1["n_invalid"] == 1 and e1["candidates"][0]["grid"] == C.tolist()
    assert len(candidates_json(book, top=1)["t1"][0]["candidates"]) == 1
