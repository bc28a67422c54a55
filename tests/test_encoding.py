import numpy as np
import pytest

from arcsolver.data import encoding


def test_layout_matches_reference():
    g = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    t = encoding.encode_grid(g).reshape(30, 30)
    assert t[:2, :2].tolist() == [[2, 3], [4, 5]]
    assert t[2, :2].tolist() == [1, 1] and t[:2, 2].tolist() == [1, 1]
    assert t[2, 2] == 0  # corner stays PAD
    assert t.sum() == 2 + 3 + 4 + 5 + 4


@pytest.mark.parametrize("canvas", [30, 10])
def test_encode_crop_roundtrip_including_translation(rng, canvas):
    for _ in range(300):
        h, w = int(rng.integers(1, canvas + 1)), int(rng.integers(1, canvas + 1))
        g = rng.integers(0, 10, size=(h, w)).astype(np.uint8)
        t = encoding.encode_grid(g, canvas=canvas)
        for strict in (False, True):
            assert np.array_equal(encoding.crop(t, strict=strict), g)
        # translated: the grid is recovered from its offset window
        r0, c0 = int(rng.integers(0, canvas - h + 1)), int(rng.integers(0, canvas - w + 1))
        tt = encoding.encode_grid(g, (r0, c0), canvas=canvas).reshape(canvas, canvas)
        window = tt[r0:, c0:]
        padded = np.zeros((canvas, canvas), np.uint8)
        padded[:window.shape[0], :window.shape[1]] = window
        assert np.array_equal(encoding.crop(padded.reshape(-1)), g)
        if r0 + h < canvas and c0 + w < canvas:  # the whole EOS border was painted
            assert np.array_equal(encoding.crop(padded.reshape(-1), strict=True), g)


def test_strict_rejects_broken_border():
    g = np.ones((3, 4), np.uint8)
    t = encoding.encode_grid(g).reshape(30, 30).copy()
    t[3, 1] = 0  # hole in the EOS row
    assert encoding.crop(t.reshape(-1), strict=True) is None
    assert encoding.crop(t.reshape(-1), strict=False).shape == (3, 4)
    t = encoding.encode_grid(g).reshape(30, 30).copy()
    t[1, 3] = 0  # ragged right edge: row 1 shorter
    assert encoding.crop(t.reshape(-1), strict=True) is None
    assert encoding.crop(np.zeros(900, np.uint8)) is None


def test_grid_must_fit():
    with pytest.raises(ValueError):
        encoding.encode_grid(np.zeros((5, 5), np.uint8), (26, 0))
