import numpy as np
import pytest

from arcsolver.data import colors, dihedral

SWAPS_AXES = [False, True, False, True, False, False, True, True]  # transforms that swap height and width


def through_source_cells(grid: np.ndarray, tid: int) -> np.ndarray:
    """`transform` rebuilt from the kernels the prepared store and the loader use (out_shape, source_cell)."""
    h, w = grid.shape
    oh, ow = dihedral.out_shape(tid, h, w)
    return np.array([[grid[dihedral.source_cell(tid, i, j, h, w)] for j in range(ow)] for i in range(oh)],
                    dtype=grid.dtype).reshape(oh, ow)


def inverse_map(m: np.ndarray) -> np.ndarray:
    return np.argsort(m).astype(np.uint8)


@pytest.mark.parametrize("tid", range(8))
def test_transform_then_inverse_is_identity_on_every_shape(tid, rng):
    for h in range(1, 31):
        for w in (1, 2, 3, 7, 16, 29, 30):
            g = rng.integers(0, 10, size=(h, w)).astype(np.uint8)
            t = dihedral.transform(g, tid)
            assert t.shape == ((w, h) if SWAPS_AXES[tid] else (h, w))
            assert np.array_equal(dihedral.inverse(t, tid), g)
            if w in (1, 7, 30) and h % 7 == 1:  # the per-cell kernel, on a sample of the shapes (it is slow in Python)
                assert np.array_equal(through_source_cells(g, tid), t)


def test_ids_match_reference_meaning():
    g = np.arange(6).reshape(2, 3)
    assert np.array_equal(dihedral.transform(g, 1), np.rot90(g, 1))
    assert np.array_equal(dihedral.transform(g, 2), np.rot90(g, 2))
    assert np.array_equal(dihedral.transform(g, 3), np.rot90(g, 3))
    assert np.array_equal(dihedral.transform(g, 4), np.fliplr(g))
    assert np.array_equal(dihedral.transform(g, 5), np.flipud(g))
    assert np.array_equal(dihedral.transform(g, 6), g.T)
    assert np.array_equal(dihedral.transform(g, 7), np.fliplr(np.rot90(g, 1)))


def test_eight_transforms_are_distinct_and_form_a_group():
    g = np.arange(12).reshape(3, 4)
    outs = [dihedral.transform(g, t) for t in range(8)]
    keys = {(o.shape, o.tobytes()) for o in outs}
    assert len(keys) == 8
    for a in range(8):  # closure: composing two transforms is one of the eight
        for b in range(8):
            c = dihedral.transform(dihedral.transform(g, a), b)
            assert (c.shape, c.tobytes()) in keys


def test_colour_map_inverse(rng):
    for all_colors in (False, True):
        for _ in range(50):
            m = colors.random_map(rng, all_colors)
            assert sorted(m.tolist()) == list(range(10))
            if not all_colors:
                assert m[0] == 0
            g = rng.integers(0, 10, size=(5, 7)).astype(np.uint8)
            assert np.array_equal(inverse_map(m)[colors.apply(g, m)], g)
            assert np.array_equal(colors.digits_to_map("".join(str(int(x)) for x in m)), m)
