"""The chunked parallel form of the linear recurrences (``families/recurrences.py``) against the recurrence itself,
one token at a time, in float64: per-head and per-channel decays, with and without the rank-one correction, lengths
inside one chunk, ragged, and over many chunks; the segment sums exactly."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier.families.recurrences import CHUNK, linear_recurrence, segment_sums
from mqarkit.tolerances import assert_as_accurate_as_reference, assert_close


def stepped(q, k, v, log_decay, a=None, b=None) -> torch.Tensor:
    """``S_t = D_t S_{t−1} + b_t (a_tᵀ S_{t−1}) + k_t v_tᵀ``, ``o_t = S_tᵀ q_t``, token by token (the module's
    docstring's definition)."""
    state = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])
    outputs = []
    for t in range(q.shape[-2]):
        decayed = torch.exp(log_decay[..., t, :])[..., None] * state  # (..., K, V); a (..., 1) decay broadcasts
        if a is not None:
            read = (a[..., t, :, None] * state).sum(-2)  # a_tᵀ S_{t−1}, (..., V)
            decayed = decayed + b[..., t, :, None] * read[..., None, :]
        state = decayed + k[..., t, :, None] * v[..., t, None, :]
        outputs.append((q[..., t, :, None] * state).sum(-2))
    return torch.stack(outputs, dim=-2)


def _inputs(n: int, per_channel: bool, corrected: bool, seed: int):
    g = torch.Generator().manual_seed(seed)
    shape, k_w, v_w = (2, 3), 5, 4
    q, k = (torch.randn(*shape, n, k_w, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(*shape, n, v_w, generator=g, dtype=torch.float64)
    log_decay = -2 * torch.rand(*shape, n, k_w if per_channel else 1, generator=g, dtype=torch.float64)
    if not corrected:
        return q, k, v, log_decay, None, None
    a = torch.nn.functional.normalize(torch.randn(*shape, n, k_w, generator=g, dtype=torch.float64), dim=-1)
    return q, k, v, log_decay, a, -0.5 * a  # a delta rule's correction: contracts, never grows


@pytest.mark.parametrize("n", [1, CHUNK - 3, CHUNK, 3 * CHUNK + 5, 12 * CHUNK])
@pytest.mark.parametrize("per_channel", [False, True], ids=["per_head", "per_channel"])
@pytest.mark.parametrize("corrected", [False, True], ids=["plain", "corrected"])
def test_chunked_form_equals_the_recurrence(n, per_channel, corrected):
    q, k, v, log_decay, a, b = _inputs(n, per_channel, corrected, seed=n)
    chunked = linear_recurrence(q, k, v, log_decay, a, b)
    assert_close(chunked, stepped(q, k, v, log_decay, a, b), dtype="float64", context=f"N={n}")


@pytest.mark.parametrize("per_channel", [False, True], ids=["per_head", "per_channel"])
@pytest.mark.parametrize("corrected", [False, True], ids=["plain", "corrected"])
def test_gradients_through_the_chunks_equal_the_recurrences(per_channel, corrected):
    inputs = tuple(t.requires_grad_() for t in _inputs(3 * CHUNK + 5, per_channel, corrected, 7) if t is not None)
    probe = torch.randn(2, 3, 3 * CHUNK + 5, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    fast = torch.autograd.grad((linear_recurrence(*inputs) * probe).sum(), inputs)
    slow = torch.autograd.grad((stepped(*inputs) * probe).sum(), inputs)
    for name, x, y in zip("q k v g a b".split(), fast, slow):
        assert_close(x, y, dtype="float64", context=f"d{name}")


def test_weak_decays_after_strong_ones_keep_float32_accuracy():
    """200 steps of ``e^-30`` then 200 of ``e^-1e-4``: the chunks' prefix sums reach -6000, where float32 keeps about
    5e-4 absolute, while the late segments sum to about -1e-3. Exponents taken as differences of prefix sums are off
    by 2.4e-4 of the output's scale here (measured); with segment sums the chunked form is off by 2.6e-6, as the
    token-by-token recurrence in float32 is (1.9e-6): float32's own cost over 400 tokens, the measure the rule of
    :func:`assert_as_accurate_as_reference` takes (no worse than twice the naive form in the same precision)."""
    n = 400
    q, k, v, _, _, _ = _inputs(n, False, False, 3)
    log_decay = torch.full((2, 3, n, 1), -1e-4, dtype=torch.float64)
    log_decay[..., :200, :] = -30.0
    expected = stepped(q, k, v, log_decay)
    single = tuple(t.float() for t in (q, k, v, log_decay))
    got, naive = linear_recurrence(*single), stepped(*single)
    assert_as_accurate_as_reference(got, expected, naive, dtype="float32", context="weak after strong decays")


def test_segment_sums_are_the_sums_of_each_segment():
    x = torch.tensor([[1.0, 2.0, 4.0, 8.0]])
    got = segment_sums(x)
    inf = float("-inf")
    expected = torch.tensor([[[0, inf, inf, inf], [2, 0, inf, inf], [6, 4, 0, inf], [14, 12, 8, 0]]])
    assert torch.equal(got, expected)


@pytest.mark.parametrize("corrected", [False, True], ids=["plain", "corrected"])
def test_inputs_broadcast_over_a_leading_axis_equal_the_expanded_recurrence(corrected):
    """A query shared by the heads (a leading axis of 1, as Mamba-2 passes ``C_t``) broadcasts like the rest."""
    q, k, v, log_decay, a, b = _inputs(3 * CHUNK + 5, False, corrected, 11)
    shared = q[:, :1]  # (2, 1, N, K) against the others' (2, 3, N, K)
    got = linear_recurrence(shared, k, v, log_decay, a, b)
    assert_close(got, stepped(shared.expand_as(k), k, v, log_decay, a, b), dtype="float64", context="broadcast q")
