import numpy as np
import pytest

from edgewise.base.records import QuantizedLayer
from edgewise.runtime import IntegerMLP
from edgewise.runtime.costs import chip, layer_work, operating_point


def test_op_counts_by_hand():
    levels = np.array([[0, 3, 0, 3, -2], [1, 0, 0, 0, 0]], dtype=np.int8)
    work = layer_work(levels, activation_bits=8)
    # row 0: 3 non-zeros in 2 bins (3, -2): 3 input additions + 1 combining add + bias; row 1: 1 + 0 + bias
    assert work["additions"] == (3 + 1 + 1) + (1 + 0 + 1)
    # one multiplication per non-empty bin (2 + 1) and one requantization per output (2)
    assert work["multiplications"] == 3 + 2
    assert work["dense_ops"] == 2 * 2 * 5 and work["nonzero"] == 4
    assert work["bytes_read"] == work["weight_bytes"] + 5 + 8


@pytest.mark.parametrize(("target", "key", "value"), [("fantastic4-fpga", "tops", 2.45),
                                                      ("fantastic4-fpga", "power_w", 3.6),
                                                      ("fantastic4-asic", "tops_per_w", 20.17)])
def test_published_operating_points_are_reproduced(target, key, value):
    assert operating_point(target)[key] == pytest.approx(value, rel=1e-3)


def test_mlp_costs_are_emulated_and_sparsity_saves_work():
    rng = np.random.default_rng(0)
    dense = rng.integers(-8, 8, (32, 64)).astype(np.int8)
    sparse = dense.copy()
    sparse[rng.random(sparse.shape) < 0.7] = 0
    calib = rng.random((16, 64))
    costs = []
    for levels in (dense, sparse):
        mlp = IntegerMLP.from_records([QuantizedLayer("l", "Linear", levels, np.float32(0.1), 4, -8, 7)], calib)
        costs.append(mlp.costs("fantastic4-asic")["total"])
    assert all(c["kind"] == "emulated" for c in costs)
    assert costs[1]["additions"] < costs[0]["additions"] and costs[1]["energy_j"] < costs[0]["energy_j"]
    assert costs[1]["additions_saved"] > 0.5  # 70% zeros skip their additions; bins and bias add some back
    assert chip("fantastic4-fpga").multipliers == 4 * 64


def test_weights_wider_than_4_bits_are_not_costed_as_fantastic4():
    from edgewise.board.errors import UserError

    rng = np.random.default_rng(0)
    wide = QuantizedLayer("fc", "Linear", rng.integers(-100, 100, (4, 6)).astype(np.int8), np.float32(0.01), 8,
                          -127, 127)
    mlp = IntegerMLP.from_records([wide], rng.random((10, 6)))
    assert mlp.run(rng.random((2, 6)), "bins").shape == (2, 4), "the kernel itself runs any width"
    with pytest.raises(UserError, match="4-bit codes"):
        mlp.costs("fantastic4-asic")
