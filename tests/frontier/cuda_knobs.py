"""The knobs the GPU tests stack for each family (imported by basename, as ``tests/bad_inputs.py`` is): two runs per
family at ``d_model = CUDA_WIDTH``, with knobs that differ where the family has any (padding and masks under the
fast paths, compilation and CUDA graphs); head widths below 16 are zero-padded for fla's tiles, so both kinds are
stacked."""

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
