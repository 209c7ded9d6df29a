"""The two forms of the stacked causal long convolution (``ops.fft_causal_conv``, ``ops.toeplitz_causal_conv``) and
the families' choice between them (``ops.causal_long_conv``) against the definition ``y_t = Σ_{s≤t} h[..., s] u_{t−s}``
written as a loop over lags, in float64."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier import ops
from mqarkit.gpu.frontier.ops import TOEPLITZ_MAX_LEN, causal_long_conv, fft_causal_conv, toeplitz_causal_conv
from mqarkit.tolerances import assert_close

FORMS = {"fft": fft_causal_conv, "toeplitz": toeplitz_causal_conv}


def by_definition(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``u (R, B, N, d)``, ``h (R, d, L ≥ N)``: lag ``s`` adds ``h[:, :, s] ⊙ u_{t−s}`` to every ``t ≥ s``."""
    n = u.shape[2]
    y = torch.zeros_like(u)
    for s in range(n):
        y[:, :, s:] += h[:, None, None, :, s] * u[:, :, : n - s]
    return y


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(("n", "taps"), [(1, 1), (5, 5), (7, 16), (33, 64)])
def test_form_equals_definition_with_gradients(form, n, taps):
    g = torch.Generator().manual_seed(n * 100 + taps)
    u = torch.randn(2, 3, n, 4, generator=g, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, taps, generator=g, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(2, 3, n, 4, generator=g, dtype=torch.float64)
    got, want = FORMS[form](u, h), by_definition(u, h)
    assert_close(got, want, context=f"{form} value")
    for a, b, name in zip(torch.autograd.grad(got, (u, h), dy), torch.autograd.grad(want, (u, h), dy), "uh"):
        assert_close(a, b, context=f"{form} d/d{name}")


def test_toeplitz_ignores_taps_beyond_the_sequence():
    """Taps past ``N − 1`` reach no output: changing them changes nothing, and their gradient is exactly zero."""
    g = torch.Generator().manual_seed(3)
    u = torch.randn(1, 2, 6, 3, generator=g, dtype=torch.float64)
    h = torch.randn(1, 3, 10, generator=g, dtype=torch.float64, requires_grad=True)
    y = toeplitz_causal_conv(u, h)
    (grad,) = torch.autograd.grad(y.sum(), h)
    assert torch.count_nonzero(grad[..., 6:]) == 0
    h2 = h.detach().clone()
    h2[..., 6:] = 99.0
    assert torch.equal(toeplitz_causal_conv(u, h2), y.detach())


@pytest.mark.parametrize(("n", "form"), [(TOEPLITZ_MAX_LEN, "toeplitz"), (TOEPLITZ_MAX_LEN + 1, "fft")])
def test_families_take_toeplitz_up_to_its_length_and_fft_beyond(n, form, monkeypatch):
    g = torch.Generator().manual_seed(n)
    u = torch.randn(1, 2, n, 3, generator=g, dtype=torch.float64)
    h = torch.randn(1, 3, n, generator=g, dtype=torch.float64)
    assert_close(causal_long_conv(u, h), by_definition(u, h), context=f"N={n}")
    called = []
    monkeypatch.setattr(ops, f"{form}_causal_conv", lambda *args: called.append(form) or FORMS[form](*args))
    ops.causal_long_conv(u, h)
    assert called == [form]
