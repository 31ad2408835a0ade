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
