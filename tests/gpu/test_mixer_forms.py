"""Every mixer: fast path == naive reference == recurrent form (float64, CPU), and measured state == formula."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from mqarkit.gpu.mixers import (
    BaseConv,
    BasedLinearAttention,
    RecurrentMixer,
    SelectiveSSM,
    SlidingWindowAttention,
    SoftmaxAttention,
)
from mqarkit.tolerances import assert_close


def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Distinct, O(1) float64 values in every parameter (so a wrong tap, bias or transpose shows)."""
    gen = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.5)
    return module


MAX_N = 17
FACTORIES: dict[str, Callable[[], RecurrentMixer]] = {
    "attn_causal_h1": lambda: SoftmaxAttention(6, num_heads=1),
    "attn_causal_h3": lambda: SoftmaxAttention(6, num_heads=3),
    "attn_strict_h2": lambda: SoftmaxAttention(6, num_heads=2, mask="strict"),
    "attn_window3_h2": lambda: SoftmaxAttention(6, num_heads=2, mask="window", window=3),
    "attn_nobias": lambda: SoftmaxAttention(6, num_heads=2, bias=False),
    "sliding_w1": lambda: SlidingWindowAttention(6, window=1),
    "sliding_w4_h3": lambda: SlidingWindowAttention(6, window=4, num_heads=3),
    "baseconv_paper_k3": lambda: BaseConv(5, MAX_N, kernel_size=3, semantics="paper"),
    "baseconv_paper_k1": lambda: BaseConv(5, MAX_N, kernel_size=1, semantics="paper"),
    "baseconv_paper_long": lambda: BaseConv(5, MAX_N, semantics="paper"),
    "baseconv_zoology_k3": lambda: BaseConv(5, MAX_N, kernel_size=3, semantics="zoology"),
    "baseconv_zoology_long": lambda: BaseConv(5, MAX_N, semantics="zoology"),
    "based_full_h1": lambda: BasedLinearAttention(6, feature_dim=3, layout="full", chunk_size=4),
    "based_compressed_h2": lambda: BasedLinearAttention(
        6, feature_dim=3, num_heads=2, layout="compressed", chunk_size=4
    ),
    "ssm_e1": lambda: SelectiveSSM(5, d_state=3, d_conv=3, chunk_size=4),
    "ssm_e2": lambda: SelectiveSSM(5, d_state=4, d_conv=4, expand=2, chunk_size=8),
}
SHAPES = [(1, 1), (2, 5), (3, 13), (2, MAX_N)]


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("shape", SHAPES, ids=[f"B{b}N{n}" for b, n in SHAPES])
def test_fast_reference_recurrent_agree(name: str, shape: tuple[int, int]) -> None:
    mixer = randomize(FACTORIES[name](), seed=sum(map(ord, name)))
    gen = torch.Generator().manual_seed(shape[1])
    x = torch.randn(*shape, mixer.d_model, generator=gen, dtype=torch.float64)
    expected = mixer.reference(x)
    assert expected.shape == x.shape
    assert_close(mixer(x), expected, dtype="float64", context=f"{name} forward")
    assert_close(mixer.recurrent(x), expected, dtype="float64", context=f"{name} recurrent")


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_measured_state_equals_formula(name: str) -> None:
    mixer = FACTORIES[name]()
    for seq_len in (1, 2, 5, 12, MAX_N):
        assert mixer.state_numbers(seq_len) == mixer.state_formula(seq_len), (name, seq_len)


def test_state_formulas_in_closed_form() -> None:
    d, n = 6, 12
    assert SoftmaxAttention(d).state_formula(n) == 2 * d * n
    assert SlidingWindowAttention(d, window=4).state_formula(n) == 2 * 3 * d
    assert SlidingWindowAttention(d, window=4).state_formula(2) == 2 * 2 * d
    assert BaseConv(d, 16, kernel_size=3).state_formula(n) == d * 2
    assert BaseConv(d, 16).state_formula(n) == d * 15
    assert BasedLinearAttention(d, feature_dim=16).state_formula(n) == 273 * d + 273
    assert BasedLinearAttention(64, feature_dim=16, layout="compressed").state_formula(n) == 153 * 64 + 153
    assert SelectiveSSM(d, d_state=16, d_conv=4, expand=2).state_formula(n) == 2 * d * (16 + 3)


def test_based_chunk_sizes_and_layouts_agree() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 11, 8, generator=gen, dtype=torch.float64)
    full = randomize(BasedLinearAttention(8, feature_dim=4, num_heads=2, layout="full"), seed=3)
    compressed = BasedLinearAttention(8, feature_dim=4, num_heads=2, layout="compressed").double()
    compressed.load_state_dict(full.state_dict(), strict=True)
    expected = full.reference(x)
    assert_close(compressed.reference(x), expected, context="compressed layout, same kernel")
    assert_close(full.parallel(x), expected, context="parallel")
    for c in (1, 2, 3, 11, 16):
        assert_close(full.chunked(x, chunk_size=c), expected, context=f"chunk {c}")


def test_taylor_kernel_matches_exp_series() -> None:
    from mqarkit.gpu.mixers.based import feature_width, taylor_features

    gen = torch.Generator().manual_seed(2)
    q, k = torch.randn(2, 5, 7, generator=gen, dtype=torch.float64)
    s = (q * k).sum(-1) / 7**0.5
    for layout in ("full", "compressed"):
        phi_q, phi_k = taylor_features(q, layout), taylor_features(k, layout)
        assert phi_q.shape[-1] == feature_width(7, layout)
        assert_close((phi_q * phi_k).sum(-1), 1 + s + s * s / 2, context=layout)
    assert feature_width(16, "full") == 273
    assert feature_width(16, "compressed") == 153


def test_strict_mask_first_row_is_output_bias() -> None:
    mixer = randomize(SoftmaxAttention(4, num_heads=2, mask="strict"), seed=5)
    x = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for y in (mixer(x), mixer.reference(x), mixer.recurrent(x)):
        assert_close(y[:, 0], mixer.out_proj.bias.expand(3, 4), context="no visible key -> 0 before out_proj")


@pytest.mark.parametrize("window", [1, 3, 4])
def test_window_admits_exactly_w_keys(window: int) -> None:
    """Changing token j changes output i iff i - w < j <= i (for every mixer path)."""
    mixer = randomize(SlidingWindowAttention(4, window=window), seed=window)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(1, 10, 4, generator=gen, dtype=torch.float64)
    j = 2
    x2 = x.clone()
    x2[0, j] += 1.0
    for path in (mixer, mixer.reference, mixer.recurrent):
        changed = (path(x2) - path(x)).abs().amax(-1)[0] > 1e-9
        assert changed.tolist() == [j <= i < j + window for i in range(10)]


def test_ssm_chunk_halving_on_strong_decay() -> None:
    mixer = randomize(SelectiveSSM(4, d_state=3, chunk_size=32), seed=7)
    with torch.no_grad():
        mixer.A_log.fill_(6.0)  # |A| = 403, so exp(-S) over a long chunk would overflow
        mixer.dt_proj.bias.fill_(2.0)
    x = torch.randn(2, 40, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    size = mixer.stable_chunk_size(mixer._inputs(x)[3])
    assert size < 32
    y = mixer(x)
    assert torch.isfinite(y).all()
    assert_close(y, mixer.reference(x), context="halved chunks")


def test_baseconv_zoology_tap_order() -> None:
    """Lag s sits at Conv1d weight[..., k-1-s]: an impulse at the last index is the identity (lag 0)."""
    conv = BaseConv(3, 8, kernel_size=3, semantics="zoology").double()
    with torch.no_grad():
        conv.conv_weight.zero_()
        conv.conv_weight[:, 0, 0] = 1.0  # lag 2
        conv.conv_bias.zero_()
    x = torch.randn(1, 8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shifted = torch.zeros_like(x)
    shifted[:, 2:] = x[:, :-2]
    assert_close(conv.causal_conv(x), shifted, context="lag-2 tap shifts by 2")
