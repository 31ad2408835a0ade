import numpy as np
import pytest

from edgewise.base.grid import symmetric_levels


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_uniform_error_is_at_most_half_a_step(per_channel, bits):
    w = np.random.default_rng(0).standard_normal((16, 8, 3, 3)).astype(np.float32)
    levels, step, qmin, qmax = symmetric_levels(w, bits, 0 if per_channel else None)
    scale = step.reshape(-1, 1, 1, 1) if per_channel else step
    error = np.abs(w - levels.astype(np.float32) * scale)
    assert bool((error <= scale / 2 + 1e-7).all())
    assert levels.dtype == np.int8 and int(levels.min()) >= qmin and int(levels.max()) <= qmax == 2 ** (bits - 1) - 1


def test_float32_arithmetic_as_torch_computes_it():
    torch = pytest.importorskip("torch")
    w = torch.randn(32, 17, generator=torch.Generator().manual_seed(1))
    levels, step, _, _ = symmetric_levels(w.numpy(), 4)
    torch_step = w.abs().max() / 7
    assert step == torch_step.numpy()
    np.testing.assert_array_equal(levels, torch.clamp(torch.round(w / torch_step), -7, 7).to(torch.int8).numpy())


def test_zero_weights_get_a_unit_step():
    levels, step, _, _ = symmetric_levels(np.zeros((3, 2), np.float32), 4, axis=0)
    assert (levels == 0).all() and (step == 1.0).all()


@pytest.mark.parametrize(("shape", "axis"), [((12, 70), 0), ((8, 40, 3, 3), 0), ((40, 6, 3, 3), 1)])
@pytest.mark.parametrize("block", [16, 32])
def test_block_steps_are_a_signed_integer_times_a_channel_base(shape, axis, block):
    from edgewise.base.grid import MULTIPLIER_MAX, blocked_symmetric_levels, expand_blocks, input_axis_of

    rng = np.random.default_rng(0)
    w = (rng.laplace(size=shape) * np.exp(rng.normal(0, 1.5, size=shape[:1] + (1,) * (len(shape) - 1)))
         ).astype(np.float32)
    levels, base, multipliers, qmin, qmax = blocked_symmetric_levels(w, 4, axis, block)
    assert (qmin, qmax) == (-8, 7) and levels.min() >= -8 and levels.max() <= 7
    blocked = list(shape)
    blocked[input_axis_of(axis)] = -(-shape[input_axis_of(axis)] // block)
    assert multipliers.shape == tuple(blocked) and base.shape == (shape[axis],)
    magnitude = np.abs(multipliers)
    assert magnitude.min() >= 1 and magnitude.max() == MULTIPLIER_MAX  # each channel's largest block uses 255
    assert (multipliers < 0).any() and (multipliers > 0).any()  # the extreme weight's sign picks the step's
    channel = [1] * len(shape)
    channel[axis] = -1
    steps = expand_blocks(base.reshape(channel) * multipliers.astype(np.float32), input_axis_of(axis), block,
                          shape[input_axis_of(axis)])
    # every error within half a step, but on the short side of the grid (+7 x step against the -8 that takes the
    # block's largest magnitude), which may clip by up to one step
    error, bound = np.abs(w - levels * steps), np.abs(steps) * (1 + 1e-6)
    assert bool((error <= np.where(levels == 7, bound, bound / 2)).all())
    assert (levels == -8).sum() >= np.prod(blocked) * 0.9  # a few blocks round their extreme up to a shared step


def test_a_block_that_is_not_a_supported_size_is_refused():
    from edgewise.base.grid import blocked_symmetric_levels
    from edgewise.board.errors import UserError

    with pytest.raises(UserError, match="block size 24 is not supported"):
        blocked_symmetric_levels(np.ones((4, 48), np.float32), 4, 0, 24)
