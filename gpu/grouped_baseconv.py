"""The data-independent sign-code BaseConv construction (U4) in torch, groups as a batch dimension (no d x d weight).

Glossary (``mqarkit.constructions._baseconv_groups``): ``B`` batch, ``N`` = ``seq_len``, ``D`` = ``num_kv_pairs``,
``m`` the sign-code width, ``g = 2m`` the group width, ``G`` the number of lags/groups (``s_j = 2, 4, ..``), ``G_c``
the groups processed at once (``group_chunk``), ``L`` the tree layers.

Per chunk of groups, with ``u0 = code(x) @ E: (B, N, g)`` (the embedding is the same block in every group):

    lin  = u0 @ W1 + G_{s_j}[i] · gate_channels           (B, G_c, N, g)   gates from the formula, never stored
    conv = tap ⊙ u0[i - (s_j - offset)]  (0 if i < ..)    (B, G_c, N, g)   a gather from u0 left-padded with N zeros
    x    = lin ⊙ conv;  then each tree layer  x = (x @ W_ℓ + b1_ℓ) ⊙ (Σ_k h_ℓ[k] ⊙ x[i - k] + b2_ℓ)
    acc += Σ_j x                                           (B, N, g)

and ``out = acc @ U: (B, N, m)``; ``predict`` is ``argmax_u <out, code(u)>`` over the ``(c, m)`` codebook (chunked over
positions). This is the dense model's arithmetic group by group (the zero blocks of the dense ``W`` are skipped, not
rounded), so float64 equals the IR model; every intermediate is an integer of size ``<= D`` or ``±1/2 .. 1`` products
of them, so float32 and bfloat16 are exact too on codebook inputs (checked on the GPU by ``main``).

Memory: the weights are ``O(g² L + G)`` numbers; the activations ``B · G_c · N · g`` per live tensor (about five live at
once), i.e. ``B · N · d`` numbers when ``G_c = G``: at N = 4,096 (d = 53,222) that is 0.87 GB per tensor per example
in float32, so ``group_chunk`` bounds the peak at ``≈ 5 · B · G_c · N · g`` elements plus the ``(B, N, c)`` readout.

``python -m mqarkit.gpu.grouped_baseconv --out DIR`` runs the N = 4,096 scale check (accuracy via
``mqarkit.oracle.score``, CUDA-event medians after warm-up, peak memory) and writes JSON + Markdown.
"""

from __future__ import annotations

import sys
import time
from functools import partial

import numpy as np
import torch
from torch import nn

from mqarkit.cli import CommandParser, run_as_script
from mqarkit.constructions._baseconv_groups import GroupedWeights, group_weights
from mqarkit.gpu.report import (
    DTYPES,
    ERROR_COLUMN,
    Column,
    add_rows,
    add_run_arguments,
    measure_point,
    parse_int_list,
    per_dtype_rows,
    reset_peak_memory,
    results_markdown,
    run_setup,
    timing_columns,
)


def lag_gates(seq_len: int, num_kv_pairs: int, lags: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(G_c, N)``: ``G_s[i] = 1[i >= 2D, i even] · 1[0 <= i - s < 2D, i - s even]`` for each lag ``s`` in ``lags``."""
    i = torch.arange(seq_len, device=lags.device)
    p = i[None, :] - lags[:, None]  # (G_c, N) the slot each lag reaches back to
    query = (i >= 2 * num_kv_pairs) & (i % 2 == 0)
    key = (p >= 0) & (p < 2 * num_kv_pairs) & (p % 2 == 0)
    return (query[None, :] & key).to(dtype)


def checked_tokens(tokens: torch.Tensor, seq_len: int, vocab_size: int, device: torch.device) -> torch.Tensor:
    """``tokens (B, N)`` integer ids in ``[0, vocab_size)`` -> int64 on ``device``; ``TypeError`` / ``ValueError``."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens: must be a torch.Tensor, got {type(tokens).__name__}")
    if tokens.ndim != 2 or tokens.shape[1] != seq_len or tokens.dtype.is_floating_point:
        raise ValueError(f"tokens: must be an integer (B, N={seq_len}) tensor, got {tokens.dtype}{tuple(tokens.shape)}")
    if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(f"tokens: ids must lie in [0, vocab_size={vocab_size})")
    return tokens.to(device, torch.int64)


def _causal_shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x (..., N, g)`` -> ``x[..., i - k, :]``, zero for ``i < k``."""
    if k == 0:
        return x
    n = x.shape[-2]
    out = torch.zeros_like(x)
    if k < n:
        out[..., k:, :] = x[..., : n - k, :]
    return out


class GroupedBaseConv(nn.Module):
    """The U4 sign construction on ``(B, N)`` tokens: ``forward -> out (B, N, m)``, ``predict -> (B, N)`` token ids."""

    def __init__(
        self,
        weights: GroupedWeights,
        *,
        group_chunk: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(weights, GroupedWeights):
            raise TypeError(f"weights: must be a GroupedWeights, got {type(weights).__name__}")
        if group_chunk is not None and (not isinstance(group_chunk, int) or group_chunk < 1):
            raise ValueError(f"group_chunk={group_chunk!r}: must be a positive int or None (all groups at once)")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype={dtype}: must be a floating-point dtype")
        self.seq_len, self.num_kv_pairs, self.vocab_size = weights.seq_len, weights.num_kv_pairs, weights.vocab_size
        self.groups = weights.groups
        self.group_chunk = group_chunk or weights.groups
        self.dtype = dtype

        def buf(name: str, arr: np.ndarray, as_dtype: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.asarray(arr), dtype=as_dtype, device=device))

        m = weights.code_width
        bits = (np.arange(self.vocab_size)[:, None] >> np.arange(m)) & 1
        buf("codebook", 2 * bits - 1)  # (c, m)
        buf("embed", weights.embed)  # (m, g)
        buf("unembed", weights.unembed)  # (g, m)
        buf("lags", weights.lags, torch.int64)  # (G,)
        first = weights.first
        buf("w1", first.weight)  # (g, g)
        buf("tap", first.tap)  # (g,)
        buf("gate_channels", first.gate_channels)  # (g,)
        self.offsets = sorted({int(o) for o in first.offset})
        self.channel_buffers = {o: f"channels_{o}" for o in self.offsets}  # offset -> its buffer's name
        for o, name in self.channel_buffers.items():  # channels whose tap sits at s - o
            buf(name, np.flatnonzero(first.offset == o), torch.int64)
        self.tree_layers = len(weights.tree)
        # layer k's buffers by role: w (g, g), h (K, g) filters, b1 (g,) linear bias, b2 (g,) conv bias
        self.tree_buffers = [
            {role: f"tree{k}_{role}" for role in ("w", "h", "b1", "b2")} for k in range(self.tree_layers)
        ]
        for names, layer in zip(self.tree_buffers, weights.tree):
            buf(names["w"], layer.weight)
            buf(names["h"], layer.filters)
            buf(names["b1"], layer.bias_linear)
            buf(names["b2"], layer.bias_conv)

    def _first_layer(self, u0: torch.Tensor, lin0: torch.Tensor, lags: torch.Tensor) -> torch.Tensor:
        """Layer 1 for the groups of ``lags (G_c,)``: ``u0, lin0 (B, N, g)`` -> ``(B, G_c, N, g)``."""
        b, n, g = u0.shape
        gates = lag_gates(n, self.num_kv_pairs, lags, u0.dtype)  # (G_c, N)
        lin = lin0[:, None] + gates[None, :, :, None] * self.gate_channels  # (B, G_c, N, g)
        padded = torch.cat([u0.new_zeros(b, n, g), u0], dim=1)  # (B, 2N, g): row N + t holds u0[t]
        conv = u0.new_empty(b, lags.shape[0], n, g)
        i = torch.arange(n, device=u0.device)
        for o in self.offsets:
            chans = self.get_buffer(self.channel_buffers[o])
            rows = n + i[None, :] - (lags[:, None] - o)  # (G_c, N), in [0, 2N): reads zeros before the sequence
            conv[..., chans] = padded[:, :, chans][:, rows]
        return lin * (conv * self.tap)

    def _tree_layer(self, k: int, x: torch.Tensor) -> torch.Tensor:
        w, h, b1, b2 = (self.get_buffer(self.tree_buffers[k][role]) for role in ("w", "h", "b1", "b2"))  # h (K, g)
        conv = sum(h[t] * _causal_shift(x, t) for t in range(h.shape[0]))
        return (x @ w + b1) * (conv + b2)

    def forward_code(self, code: torch.Tensor) -> torch.Tensor:
        """``code (B, N, m)`` (any real entries) -> ``out (B, N, m)``, the model's output block."""
        code = code.to(self.codebook.device, self.dtype)
        u0 = code @ self.embed  # (B, N, g)
        lin0 = u0 @ self.w1  # (B, N, g), the same for every group
        acc = torch.zeros_like(u0)
        for start in range(0, self.groups, self.group_chunk):
            x = self._first_layer(u0, lin0, self.lags[start : start + self.group_chunk])
            for k in range(self.tree_layers):
                x = self._tree_layer(k, x)
            acc += x.sum(dim=1)
        return acc @ self.unembed

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens (B, N)`` int -> ``out (B, N, m)``."""
        tokens = checked_tokens(tokens, self.seq_len, self.vocab_size, self.codebook.device)
        return self.forward_code(self.codebook[tokens])

    def readout(self, out: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """``out (B, N, m)`` -> ``(B, N)`` int64: ``argmax_u <out, code(u)>`` (first maximum), positions chunked."""
        flat = out.reshape(-1, out.shape[-1])
        preds = [(flat[t : t + chunk] @ self.codebook.T).argmax(dim=-1) for t in range(0, flat.shape[0], chunk)]
        return torch.cat(preds).reshape(out.shape[:-1])

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.readout(self.forward(tokens))


# --------------------------------------------------------------------------------------------------------------------
# the N = 4,096 scale check


def run_point(
    seq_len: int,
    num_kv_pairs: int,
    vocab_size: int,
    batch_size: int,
    dtypes: list[str],
    group_chunk: int | None,
    device: torch.device,
    seed: int,
    repeats: int,
) -> list[dict]:
    """One ``(N, D, c)``: per dtype the accuracy (``oracle.score``), exactness of ``out`` at the queries, tokens/s and
    peak memory; ``out`` of every dtype is compared with the first dtype's (``max_abs_diff_vs_first``)."""
    from mqarkit.oracle import expected_answers, score
    from mqarkit.task import MQARSpec, generate

    spec = MQARSpec(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, filler="clean")
    batch = generate(spec, batch_size, np.random.default_rng(seed))
    t0 = time.perf_counter()
    weights = group_weights(seq_len, num_kv_pairs, vocab_size)
    build_s = time.perf_counter() - t0
    answers = torch.from_numpy(expected_answers(batch)).to(device)  # (B, N), -100 off the queries
    inputs = torch.from_numpy(batch.inputs).to(device)
    base = {
        "construction": "baseconv_data_independent (grouped)",
        "seq_len": seq_len,
        "vocab_size": vocab_size,
        "num_kv_pairs": num_kv_pairs,
        "filler": "clean",
        "batch": batch_size,
        "groups": weights.groups,
        "width_d": weights.width,
        "group_chunk": group_chunk or weights.groups,
        "stored_numbers": weights.stored_numbers(),
        "build_s": round(build_s, 4),
    }
    first_out: list[torch.Tensor] = []  # the first dtype's output, the reference of the others

    def fill(row: dict, name: str) -> None:
        t0 = time.perf_counter()
        model = GroupedBaseConv(weights, group_chunk=group_chunk, dtype=DTYPES[name], device=device)
        row["load_s"] = round(time.perf_counter() - t0, 4)
        reset_peak_memory(device)
        with torch.no_grad():
            out = model(inputs)  # (B, N, m)
        pred = model.readout(out)
        row["accuracy"] = score(pred.cpu().numpy(), batch).accuracy
        query = answers != -100
        want = model.codebook[answers[query]]  # (B·D, m): the code of each query's value
        row["out_exact_at_queries"] = bool(torch.equal(out[query], want))
        if not first_out:
            first_out.append(out.double())
        row["max_abs_diff_vs_first"] = float((out.double() - first_out[0]).abs().max())
        measure_point(row, partial(model.predict, inputs), tokens=batch_size * seq_len, device=device, repeats=repeats)
        del model, out, pred

    return per_dtype_rows(base, dtypes, device, fill)


COLUMNS: list[Column] = [
    ("N", "seq_len", None),
    ("c", "vocab_size", None),
    ("D", "num_kv_pairs", None),
    ("B", "batch", None),
    ("G", "groups", None),
    ("d", "width_d", None),
    ("group chunk", "group_chunk", None),
    ("dtype", "dtype", None),
    ("accuracy", "accuracy", ".4f"),
    ("out exact at queries", "out_exact_at_queries", None),
    ("max abs diff vs first dtype", "max_abs_diff_vs_first", "g"),
    *timing_columns(),
    ERROR_COLUMN,
]
STEM = "scale_checks_baseconv4096"  # <out>/STEM.json, .md
CUDA_DTYPES = "float32,bfloat16"


def markdown(env: dict, rows: list[dict]) -> str:
    return results_markdown(env, rows, COLUMNS)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = CommandParser(prog="mqarkit.gpu.grouped_baseconv", description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--vocab-size", type=int, default=None, help="default: seq_len + 1 (MQARSpec needs c > N)")
    parser.add_argument("--num-kv-pairs", default="64,1024", help="comma-separated D")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--group-chunk", type=int, default=None)
    add_run_arguments(parser, cuda_dtypes=CUDA_DTYPES, repeats=5, stem=STEM)
    args = parser.parse_args(argv)
    device, dtypes, env = run_setup(args, CUDA_DTYPES)
    vocab = args.vocab_size or args.seq_len + 1
    rows: list[dict] = []
    for d_pairs in parse_int_list(args.num_kv_pairs, "--num-kv-pairs"):
        new = run_point(
            args.seq_len, d_pairs, vocab, args.batch, dtypes, args.group_chunk, device, args.seed, args.repeats
        )
        add_rows(rows, new, out=args.out, stem=STEM, env=env, markdown=markdown)
    return rows


if __name__ == "__main__":
    sys.exit(run_as_script(main, "mqarkit.gpu.grouped_baseconv"))
