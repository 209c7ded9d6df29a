"""Forms of the h3 and mamba families that the protocol tests do not reach at their sizes: mamba's chunked scan at
every chunk length (one chunk, several, a padded last one) against the plain recurrence, and h3 with a shift SSM
longer than ``max_len`` (its taps beyond ``L`` never meet an input; the register keeps ``L − 1`` keys)."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier.families.h3 import H3
from mqarkit.gpu.frontier.families.mamba import chunk_length, selective_scan
from mqarkit.tolerances import assert_close


def _recurrence(x, dt, a, b, c):
    """``h_t = exp(Δ_t A) h_{t−1} + Δ_t x_t B_tᵀ``, ``y_t = h_t C_t``, one position after another."""
    h = torch.zeros(*x.shape[:2], *a.shape[1:], dtype=x.dtype)
    ys = []
    for t in range(x.shape[2]):
        h = torch.exp(dt[:, :, t, :, None] * a[:, None]) * h + (dt * x)[:, :, t, :, None] * b[:, :, t, None, :]
        ys.append((h * c[:, :, t, None, :]).sum(-1))
    return torch.stack(ys, dim=2), h


@pytest.mark.parametrize("chunk", [None, 1, 3, 7, 23, 64])
def test_chunked_scan_equals_the_recurrence(chunk):
    g = torch.Generator().manual_seed(0)
    runs, batch, n, di, states = 2, 3, 23, 5, 4

    def draw(*shape):
        return torch.randn(shape, generator=g, dtype=torch.float64)

    x, b, c = draw(runs, batch, n, di), draw(runs, batch, n, states), draw(runs, batch, n, states)
    dt = torch.nn.functional.softplus(draw(runs, batch, n, di))
    a = -torch.exp(draw(runs, di, states))
    y, last = selective_scan(x, dt, a, b, c, chunk)
    want_y, want_last = _recurrence(x, dt, a, b, c)
    assert_close(y, want_y, dtype="float64", context=f"chunk {chunk}: outputs")
    assert_close(last, want_last, dtype="float64", context=f"chunk {chunk}: last state")


def test_chunk_length_is_the_smallest_power_of_two_covering_the_square_root():
    assert [chunk_length(n) for n in (1, 2, 4, 5, 16, 17, 64, 65, 1024)] == [1, 2, 2, 4, 4, 8, 8, 16, 32]


def test_h3_with_a_shift_ssm_longer_than_max_len():
    """``d_state = 12 > max_len = 8``: stepping equals the reference, and the register holds ``L − 1 = 7`` keys."""
    mixer = H3(16, 8, [{"d_state": 12, "head_dim": 2}, {"d_state": 4, "head_dim": 1}], [torch.Generator()] * 2)
    with torch.no_grad():
        mixer.log_dt.fill_(-1.0)  # steps of about 0.37: long kernels, not near-identities
    u = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(1))
    state, outputs = None, []
    for t in range(8):
        y, state = mixer.step(0, u[:, t], state)
        outputs.append(y)
    assert_close(torch.stack(outputs, 1), mixer.reference(0, u), dtype="float32", context="stepping")
    assert_close(mixer(u[None].expand(2, -1, -1, -1))[0], mixer.reference(0, u), dtype="float32", context="fast")
    assert state["shift"].shape == (2, 16, 7)
    assert H3.state_formula(16, 8, {"d_state": 12, "head_dim": 2}, 8) == 16 * 7 + 2 * 16 * 12
