import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.representations import REPRESENTATIONS, decode, encode, matvec, size, smallest


@st.composite
def matrices(draw):
    rows, cols = draw(st.integers(1, 20)), draw(st.integers(1, 50))
    qmin = draw(st.sampled_from([-8, -7, 0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    levels = rng.integers(qmin, qmin + 16, (rows, cols))
    levels[rng.random((rows, cols)) < draw(st.floats(0, 1))] = 0
    return levels.astype(np.int8), qmin


@settings(max_examples=100, deadline=None)
@given(matrices())
def test_every_representation_round_trips_and_its_formula_is_its_size(case):
    levels, qmin = case
    x = np.random.default_rng(0).integers(0, 256, levels.shape[1]).astype(np.int64)
    for kind in REPRESENTATIONS:
        enc = encode(kind, levels, qmin, 4, 0.25)
        assert len(enc.data) == size(kind, levels)
        assert np.array_equal(decode(enc), levels)
        assert np.array_equal(matvec(enc, x), levels.astype(np.int64) @ x)


def test_sizes_by_hand():
    levels = np.array([[0, 3, 0, 3], [1, 0, 0, 0]], dtype=np.int8)
    # dense: 6-byte header + 8 nibbles
    assert size("dense", levels) == 6 + 4
    # CSR: header + 3 row pointers x 4 + 3 nibbles (2 bytes) + 3 uint16 indices
    assert size("csr", levels) == 6 + 12 + 2 + 6
    # CER: header + count byte + 2 codebook bytes + 2 rows x 2 uint16 counts + 3 indices
    assert size("cer", levels) == 6 + 1 + 2 + 8 + 6
    # CSER: header + 1 + 2 + per row 1 group-count byte + 3 bytes per group (2 groups) + 3 indices
    assert size("cser", levels) == 6 + 1 + 2 + 2 + 6 + 6


def test_the_smallest_follows_sparsity():
    rng = np.random.default_rng(0)
    dense = rng.integers(-8, 8, (64, 64)).astype(np.int8)
    dense[dense == 0] = 1
    assert smallest(dense)[0] == "dense"
    sparse = np.zeros((64, 256), np.int8)
    sparse[rng.random(sparse.shape) < 0.03] = 2
    assert smallest(sparse)[0] in ("cser", "csr", "cer")
    assert smallest(sparse)[1] < size("dense", sparse)


def test_unknown_representation():
    with pytest.raises(ValueError):
        size("zip", np.zeros((2, 2), np.int8))
