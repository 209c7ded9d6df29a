"""The knobs the GPU tests stack for each family (imported by basename, as ``tests/bad_inputs.py`` is): two runs per
family at ``d_model = CUDA_WIDTH``, with knobs that differ where the family has any (padding and masks under the
fast paths, compilation and CUDA graphs); head widths below 16 are zero-padded for fla's tiles, so both kinds are
stacked. And :func:`bf16_mixer_backward`, one training step's mixer under bf16 autocast, as the harness runs it."""

import torch

CUDA_WIDTH = 64
CUDA_KNOBS = {
    "attention": [{}, {}],
    "based": [{"feature_dim": 8}, {"feature_dim": 16}],
    "sliding_window": [{"window": 8}, {"window": 33}],
    "long_conv": [{}, {}],
    "mamba2": [{"d_state": 8}, {"d_state": 16}],
    "rwkv4": [{}, {}],
    "rwkv7": [{"head_dim": 16}, {"head_dim": 32}],
    "gla": [{"heads": 2, "head_dim": 16}, {"heads": 4, "head_dim": 8}],
    "delta_net": [{"heads": 2, "head_dim": 16}, {"heads": 4, "head_dim": 32}],
    "gated_delta_net": [{"heads": 2, "head_dim": 16}, {"heads": 1, "head_dim": 32}],
    "h3": [{"d_state": 16, "head_dim": 2}, {"d_state": 64, "head_dim": 4}],
    "hyena": [{}, {}],
    "mamba": [{"d_state": 8}, {"d_state": 16}],
}


def bf16_mixer_backward(family: str) -> torch.Tensor:
    """The family's stack of :data:`CUDA_KNOBS` on CUDA, its fast path served: one forward under bf16 autocast (the
    harness's) and a backward; the gradient of the mixer's input ``(2, 3, 100, CUDA_WIDTH)`` float32."""
    from mqarkit.gpu.frontier.config import ModelConfig
    from mqarkit.gpu.frontier.model import StackedHybrid

    configs = [ModelConfig(family, CUDA_WIDTH, vocab_size=256, max_len=256, **k) for k in CUDA_KNOBS[family]]
    mixer = StackedHybrid(configs, [0, 1], "cuda").mixer
    u = torch.randn(2, 3, 100, CUDA_WIDTH, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
        assert mixer.fla_serves(u.device, torch.bfloat16)
        out = mixer(u)
    out.float().square().mean().backward()
    return u.grad
