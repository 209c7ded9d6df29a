"""The two forms of the stacked causal long convolution (``ops.fft_causal_conv``, ``ops.toeplitz_causal_conv``) and
the families' choice between them (``ops.causal_long_conv``) against the definition ``y_t = Σ_{s≤t} h[..., s] u_{t−s}``
written as a loop over lags, in float64."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier import ops
from mqarkit.gpu.frontier.ops import (
    TOEPLITZ_MAX_LEN,
    causal_long_conv,
    diagonal_sums,
    fft_causal_conv,
    toeplitz_causal_conv,
    toeplitz_matrix,
)
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


def test_toeplitz_matrix_is_its_definition_and_diagonal_sums_its_adjoint():
    """``T[t, s] = taps[t − s]`` (0 above the diagonal), and ``⟨T(x), G⟩ = ⟨x, diagonal_sums(G)⟩``: exact over small
    integers in float64, where every sum is exact whatever its order."""
    g = torch.Generator().manual_seed(11)
    taps = torch.randint(-9, 10, (2, 3, 7), generator=g).double()
    t = toeplitz_matrix(taps)
    for i in range(7):
        for j in range(7):
            assert torch.equal(t[..., i, j], taps[..., i - j] if j <= i else torch.zeros(2, 3, dtype=torch.float64))
    grad = torch.randint(-9, 10, (2, 3, 7, 7), generator=g).double()
    assert torch.equal((t * grad).sum((-1, -2)), (taps * diagonal_sums(grad)).sum(-1))


def test_toeplitz_form_compiles_once_for_every_length_up_to_its_limit():
    """The Toeplitz form holds for a symbolic ``N``: compiled with the sequence axis marked dynamic (as the harness
    marks it), the lengths of based-fig2's training segments share one graph, forward and backward (``aot_eager``
    traces both). With ``unfold`` building ``T``, dynamo specialised on ``N`` and compiled once per length."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(toeplitz_causal_conv, backend=counter)
    g = torch.Generator().manual_seed(5)
    h = torch.randn(2, 4, 2 * TOEPLITZ_MAX_LEN, generator=g, requires_grad=True)  # taps beyond N, as max_len gives
    for n in (64, 128, TOEPLITZ_MAX_LEN):
        u = torch.randn(2, 3, n, 4, generator=g, requires_grad=True)
        torch._dynamo.maybe_mark_dynamic(u, 2)
        y = compiled(u, h)
        dy = torch.randn(y.shape, generator=g)
        got = torch.autograd.grad(y, (u, h), dy)
        want = torch.autograd.grad(toeplitz_causal_conv(u, h), (u, h), dy)
        assert torch.equal(y, toeplitz_causal_conv(u, h).detach()), n
        for a, b, name in zip(got, want, "uh"):
            assert_close(a, b, context=f"N={n} d/d{name}")
    torch._dynamo.reset()
    assert counter.frame_count == 1
