"""The input-dependent one-hot lag lookup (U3) in torch: lag groups as a batch dimension, one lag set per example.

Glossary (``mqarkit.constructions._baseconv_lookup_groups``): ``B`` batch, ``N`` = ``seq_len``, ``D`` =
``num_kv_pairs``, ``c`` = ``vocab_size``, ``t`` the lag groups, ``t_c`` the groups processed at once (``group_chunk``),
``s[e, j]`` the ``j``-th lag of example ``e`` (``lags: (B, t)``), ``M`` / ``V`` the two ``c``-channel blocks of a group,
``G_s[i]`` the position gate, ``α, β, ..`` the non-zero block coefficients of :class:`LookupGroupWeights`.

Two evaluations of the same two BaseConv layers:

``forward_code(code (B, N, c), lags)`` -- the reference: every channel of every group, ``(B, t_c, N, 2, c)`` per
tensor, for any real code; the ``{I, J}`` block matmuls as ``Σ_a A[a, b]·x_a + B[a, b]·(Σ_q x_a)·1``. Small sizes.

``forward(tokens (B, N), lags)`` -- the same layers on one-hot codes, with every activation block held as a *scaled
one-hot* ``v·e(k)``, i.e. a value ``(B, t_c, N)`` and a token index ``(B, t_c, N)``, so no ``(B, t, N, 2c)`` tensor
exists. This is exact, not an approximation: with ``u0_b = embed[b]·e(x_i)``,

    layer A, M:  lin = α·embed[M]·e(x_i)  (W's only non-zero block is α·I on M -> M),
                 conv = tapA[M]·embed[M]·e(x_{i-s})·1[i >= s]
                 ->  mA = α·embed[M]²·tapA[M]·1[i >= s]·1[x_i = x_{i-s}]          at index x_i
    layer A, V:  lin = gateA[V]·G_s[i]·1  (no W column into V: the bias alone, a constant vector),
                 conv = tapA[V]·embed[V]·e(x_{i-s+1})·1[i >= s - 1]
                 ->  vA = gateA[V]·G_s[i]·tapA[V]·embed[V]·1[i >= s - 1]          at index x_{i-s+1}
    layer B, V:  lin = β·Σ_q mA[q]·1 = β·mA·1  (the J block M -> V: a scaled one-hot sums to its value),
                 conv = tapB[V]·vA  (tap 0)
                 ->  zB = β·mA·tapB[V]·vA                                         at index x_{i-s+1}
    layer B, M:  no W column into M, no bias: 0.
    out[e, i, :] = Σ_j unembed[V]·zB[e, j, i]·e(x_{i-s_j+1})     (a scatter-add over the groups into (B, N, c))

(the shifts read token indices by a gather; ``i < shift`` reads 0, as the causal conv does). Each line is the layer's
formula ``(u W + b1) ⊙ (h * u + b2)`` restricted to the channels it can make non-zero; the module refuses weights whose
support differs from this pattern (``ValueError``). ``readout`` is ``argmax_u <out, e(u)> = argmax_u out[.., u]`` (the
one-hot codebook is ``I_c``; first maximum on ties, like ``ArgmaxReadout``).

Memory: ``forward`` holds ``O(B·t_c·N)`` indices and values plus ``out (B, N, c)``; ``forward_code`` holds
``O(B·t_c·N·c)``. Every value is 0/1 or a count ``<= t``, so float32 and bfloat16 equal float64 on codebook inputs.

``python -m mqarkit.gpu.grouped_lookup --out DIR`` runs the N = 4,096 scale check (lags from the construction's own
``lags_for`` rule per example, accuracy via ``mqarkit.oracle.score``, CUDA-event medians after warm-up, peak memory).
"""

from __future__ import annotations

import sys
import time
from functools import partial

import numpy as np
import torch
from torch import nn

from mqarkit.cli import CommandParser, run_as_script
from mqarkit.constructions._baseconv_lookup_groups import BLOCKS, LookupGroupWeights
from mqarkit.gpu.grouped_baseconv import checked_tokens, lag_gates
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

M, V = 0, 1  # block indices


def _pattern_error(weights: LookupGroupWeights) -> str | None:
    """Why ``weights`` does not have the support ``forward`` assumes (``None`` if it does)."""
    if len(weights.layers) != 2:
        return f"{len(weights.layers)} layers, not 2"
    a, b = weights.layers
    off_m = np.array([[True, False], [False, False]])
    checks = [
        (a.lag_taps and not b.lag_taps, "layer A's taps must follow the lag and layer B's must not"),
        (not np.any(a.identity[~off_m]) and not np.any(a.ones), "layer A: W must be α·I on M -> M only"),
        (a.gate[M] == 0, "layer A: the gate must sit on V only"),
        (not np.any(b.identity) and b.ones[V].sum() == 0 and b.ones[M, M] == 0, "layer B: W must be β·J on M -> V"),
        (not np.any(b.gate) and b.offset[V] == 0, "layer B: no gate, V's tap at 0"),
    ]
    bad = [why for ok, why in checks if not ok]
    return "; ".join(bad) or None


class GroupedLookup(nn.Module):
    """U3 on ``(B, N)`` tokens with per-example ``lags (B, t)``: ``forward -> out (B, N, c)``, ``predict -> (B, N)``."""

    def __init__(
        self,
        weights: LookupGroupWeights,
        *,
        group_chunk: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(weights, LookupGroupWeights):
            raise TypeError(f"weights: must be a LookupGroupWeights, got {type(weights).__name__}")
        if group_chunk is not None and (
            isinstance(group_chunk, bool) or not isinstance(group_chunk, int) or group_chunk < 1
        ):
            raise ValueError(f"group_chunk={group_chunk!r}: must be a positive int or None (all groups at once)")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype={dtype}: must be a floating-point dtype")
        why = _pattern_error(weights)
        if why:
            raise ValueError(f"weights: not the U3 lookup pattern the index evaluation assumes: {why}")
        self.weights = weights
        self.seq_len, self.num_kv_pairs, self.vocab_size = weights.seq_len, weights.num_kv_pairs, weights.vocab_size
        self.groups = weights.groups
        self.group_chunk = group_chunk or weights.groups
        self.dtype = dtype
        self.register_buffer("anchor", torch.zeros((), dtype=dtype, device=device))  # carries device and dtype
        a, b = weights.layers
        e, u = weights.embed, weights.unembed
        # the scalars of the index formulas in the module docstring
        self.match_scale = float(a.identity[M, M] * e[M] * e[M] * a.tap[M])  # α·embed[M]²·tapA[M]
        self.value_scale = float(a.gate[V] * a.tap[V] * e[V])  # gateA[V]·tapA[V]·embed[V]
        self.out_scale = float(b.ones[M, V] * b.tap[V] * u[V])  # β·tapB[V]·unembed[V]
        self.offset_m, self.offset_v = int(a.offset[M]), int(a.offset[V])

    # -- input checks ------------------------------------------------------------------------------------------------

    def _lags(self, lags: torch.Tensor | np.ndarray, batch: int) -> torch.Tensor:
        lags = torch.as_tensor(lags)
        if lags.dtype.is_floating_point or lags.shape != (batch, self.groups):
            raise ValueError(
                f"lags: must be an integer (B, t) = {(batch, self.groups)} tensor, got {tuple(lags.shape)}"
            )
        lags = lags.to(self.anchor.device, torch.int64)
        if lags.numel():
            if int(lags.min()) < 1 or int(lags.max()) > self.seq_len - 1:
                raise ValueError(f"lags: every lag must lie in [1, seq_len - 1 = {self.seq_len - 1}]")
            ordered = lags.sort(dim=1).values
            if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
                raise ValueError("lags: the lags of an example must be distinct")
        return lags

    def _gates(self, lags: torch.Tensor) -> torch.Tensor:
        """``lags (B, t_c)`` -> ``G_s[i]`` as ``(B, t_c, N)`` in the module's dtype (from the formula)."""
        flat = lag_gates(self.seq_len, self.num_kv_pairs, lags.reshape(-1), self.dtype)
        return flat.reshape(*lags.shape, self.seq_len)

    # -- the index evaluation ----------------------------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor, lags: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``tokens (B, N)`` int, ``lags (B, t)`` int -> ``out (B, N, c)`` (scaled one-hots, see the module doc)."""
        tokens = checked_tokens(tokens, self.seq_len, self.vocab_size, self.anchor.device)
        lags = self._lags(lags, tokens.shape[0])
        bsz, n = tokens.shape
        out = torch.zeros(bsz, n, self.vocab_size, dtype=self.dtype, device=tokens.device)
        i = torch.arange(n, device=tokens.device)
        for start in range(0, self.groups, self.group_chunk):
            s = lags[:, start : start + self.group_chunk]  # (B, t_c)
            src_m = i - (s[..., None] - self.offset_m)  # (B, t_c, N): the position M's tap reads
            src_v = i - (s[..., None] - self.offset_v)
            flat = lambda src: src.clamp(min=0).reshape(bsz, -1)  # noqa: E731
            key = tokens.gather(1, flat(src_m)).reshape(src_m.shape)  # x_{i-s}
            value = tokens.gather(1, flat(src_v)).reshape(src_v.shape)  # x_{i-s+1}: the index of vA and zB
            m_a = self.match_scale * ((src_m >= 0) & (key == tokens[:, None, :])).to(self.dtype)  # at index x_i
            v_a = self.value_scale * self._gates(s) * (src_v >= 0).to(self.dtype)  # at index x_{i-s+1}
            z_b = self.out_scale * m_a * v_a  # (B, t_c, N) at index x_{i-s+1}
            out.scatter_add_(2, value.transpose(1, 2), z_b.transpose(1, 2))  # Σ over the chunk's groups
        return out

    def readout(self, out: torch.Tensor) -> torch.Tensor:
        """``out (B, N, c)`` -> ``(B, N)`` int64: ``argmax_u <out, e(u)> = argmax_u out[.., u]`` (first maximum)."""
        return out.argmax(dim=-1)

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor, lags: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.readout(self.forward(tokens, lags))

    # -- the reference: every channel --------------------------------------------------------------------------------

    def forward_code(self, code: torch.Tensor, lags: torch.Tensor | np.ndarray) -> torch.Tensor:
        """``code (B, N, c)`` (any real entries), ``lags (B, t)`` -> ``out (B, N, c)``, all ``2c`` channels of every
        group materialised (``(B, t_c, N, 2, c)``): the naive reference of :meth:`forward`."""
        code = torch.as_tensor(code).to(self.anchor.device, self.dtype)
        if code.ndim != 3 or code.shape[1:] != (self.seq_len, self.vocab_size):
            raise ValueError(
                f"code: shape {tuple(code.shape)} must be (B, N, c) = (B, {self.seq_len}, {self.vocab_size})"
            )
        lags = self._lags(lags, code.shape[0])
        w = self.weights
        coef = lambda a: torch.as_tensor(np.asarray(a), dtype=self.dtype, device=code.device)  # noqa: E731
        bsz, n, _ = code.shape
        u0 = code[:, :, None, :] * coef(w.embed)[:, None]  # (B, N, 2, c)
        i = torch.arange(n, device=code.device)
        out = torch.zeros_like(code)
        for start in range(0, self.groups, self.group_chunk):
            s = lags[:, start : start + self.group_chunk]  # (B, t_c)
            gates = self._gates(s)  # (B, t_c, N)
            x = u0[:, None].expand(bsz, s.shape[1], n, BLOCKS, self.vocab_size)
            for layer in w.layers:
                sums = x.sum(dim=-1, keepdim=True)
                lin = torch.einsum("...aq,ab->...bq", x, coef(layer.identity))
                lin = lin + torch.einsum("...aq,ab->...bq", sums, coef(layer.ones))
                lin = lin + (gates[..., None] * coef(layer.gate))[..., None]
                if layer.lag_taps:
                    shift = s[..., None] - torch.as_tensor(layer.offset, device=code.device)  # (B, t_c, 2)
                else:
                    shift = torch.as_tensor(layer.offset, device=code.device).expand(*s.shape, BLOCKS)
                src = i[:, None] - shift[:, :, None, :]  # (B, t_c, N, 2)
                e_idx = torch.arange(bsz, device=code.device)[:, None, None, None]
                j_idx = torch.arange(s.shape[1], device=code.device)[None, :, None, None]
                b_idx = torch.arange(BLOCKS, device=code.device)
                conv = x[e_idx, j_idx, src.clamp(min=0), b_idx] * (src >= 0).to(self.dtype)[..., None]
                x = lin * (conv * coef(layer.tap)[:, None])
            out += torch.einsum("etibq,b->eiq", x, coef(w.unembed))
        return out


def lag_table(inputs: np.ndarray, *, num_kv_pairs: int, vocab_size: int, rule: str, t: int) -> np.ndarray:
    """``inputs (B, N)`` -> ``(B, t)`` int64: each example's lags by ``choose_lags``, the rule the construction's own
    ``lags_for`` applies (called directly: building the construction also builds its dense template model, ``d x d``
    with ``d = 2tc``, 137 GB at N = 4,096, t = 16)."""
    from mqarkit.constructions.baseconv_input_dependent import BaseConvInputDependent, choose_lags

    inputs = np.asarray(inputs)
    BaseConvInputDependent.validate_sizes(
        vocab_size=vocab_size, seq_len=inputs.shape[1], num_kv_pairs=num_kv_pairs, lags=rule, t=t
    )
    rows = [choose_lags(x, num_kv_pairs=num_kv_pairs, vocab_size=vocab_size, rule=rule, t=t) for x in inputs]
    return np.array(rows, dtype=np.int64).reshape(len(inputs), t)


# --------------------------------------------------------------------------------------------------------------------
# the N = 4,096 scale check


def run_point(
    seq_len: int,
    num_kv_pairs: int,
    vocab_size: int,
    batch_size: int,
    rule: str,
    dtypes: list[str],
    device: torch.device,
    seed: int,
    repeats: int,
) -> list[dict]:
    """One ``(N, D = t, c, rule)``: per dtype the accuracy (``oracle.score``), exactness of ``out`` at the queries,
    tokens/s of ``predict`` given the lags, peak memory; the CPU time of choosing the lags (``lags_for``) apart."""
    from mqarkit.constructions._baseconv_lookup_groups import group_lookup_weights
    from mqarkit.constructions._baseconv_onehot_lookup import onehot_lookup_direct
    from mqarkit.oracle import expected_answers, score
    from mqarkit.task import MQARSpec, generate

    spec = MQARSpec(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, filler="clean")
    batch = generate(spec, batch_size, np.random.default_rng(seed))
    t0 = time.perf_counter()
    lags_np = lag_table(batch.inputs, num_kv_pairs=num_kv_pairs, vocab_size=vocab_size, rule=rule, t=num_kv_pairs)
    lag_s = time.perf_counter() - t0
    weights = group_lookup_weights(seq_len, num_kv_pairs, vocab_size, lags_np[0])
    answers = torch.from_numpy(expected_answers(batch)).to(device)  # (B, N), -100 off the queries
    inputs, lags = torch.from_numpy(batch.inputs).to(device), torch.from_numpy(lags_np).to(device)
    base = {
        "construction": "baseconv_input_dependent (grouped, index form)",
        "lags_rule": rule,
        "seq_len": seq_len,
        "vocab_size": vocab_size,
        "num_kv_pairs": num_kv_pairs,
        "t": weights.groups,
        "width_d": weights.width,
        "filler": "clean",
        "batch": batch_size,
        "stored_numbers": weights.stored_numbers(),
        "lags_for_cpu_s_per_example": round(lag_s / batch_size, 5),
    }
    first_out: list[torch.Tensor] = []  # the first dtype's output, the reference of the others

    def fill(row: dict, name: str) -> None:
        model = GroupedLookup(weights, dtype=DTYPES[name], device=device)
        reset_peak_memory(device)
        with torch.no_grad():
            out = model(inputs, lags)  # (B, N, c)
        pred = model.readout(out)
        row["accuracy"] = score(pred.cpu().numpy(), batch).accuracy
        query = answers != -100
        want = torch.nn.functional.one_hot(answers[query], vocab_size).to(out.dtype)  # (B·D, c)
        row["out_exact_at_queries"] = bool(torch.equal(out[query], want))
        if not first_out:
            first_out.append(out.double())
        row["max_abs_diff_vs_first"] = float((out.double() - first_out[0]).abs().max())
        direct = onehot_lookup_direct(batch.inputs[0], num_kv_pairs, vocab_size, lags_np[0])  # (*), by loops
        row["example0_equals_direct"] = bool(np.array_equal(out[0].double().cpu().numpy(), direct))
        measure_point(
            row,
            partial(model.predict, inputs, lags),
            tokens=batch_size * seq_len,
            device=device,
            warmup=2,
            repeats=repeats,
        )
        del model, out, pred

    return per_dtype_rows(base, dtypes, device, fill)


COLUMNS: list[Column] = [
    ("N", "seq_len", None),
    ("c", "vocab_size", None),
    ("D = t", "num_kv_pairs", None),
    ("lags", "lags_rule", None),
    ("B", "batch", None),
    ("d", "width_d", None),
    ("dtype", "dtype", None),
    ("accuracy", "accuracy", ".4f"),
    ("out exact at queries", "out_exact_at_queries", None),
    ("example 0 == (*)", "example0_equals_direct", None),
    ("max abs diff vs first dtype", "max_abs_diff_vs_first", "g"),
    *timing_columns(peak_spec=".3f"),
    ("lags_for s/example (CPU)", "lags_for_cpu_s_per_example", None),
    ERROR_COLUMN,
]
STEM = "scale_checks_inputdep4096"  # <out>/STEM.json, .md
CUDA_DTYPES = "float32,bfloat16"


def markdown(env: dict, rows: list[dict]) -> str:
    return results_markdown(env, rows, COLUMNS)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = CommandParser(prog="mqarkit.gpu.grouped_lookup", description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--vocab-size", type=int, default=None, help="default: seq_len + 1 (MQARSpec needs c > N)")
    parser.add_argument("--num-kv-pairs", default="16,64", help="comma-separated D (t = D)")
    parser.add_argument("--rules", default="exact,autocorrelation", help="comma-separated lag rules")
    parser.add_argument("--batch", type=int, default=4)
    add_run_arguments(parser, cuda_dtypes=CUDA_DTYPES, repeats=10, stem=STEM)
    args = parser.parse_args(argv)
    device, dtypes, env = run_setup(args, CUDA_DTYPES)
    vocab = args.vocab_size or args.seq_len + 1
    rows: list[dict] = []
    for d_pairs in parse_int_list(args.num_kv_pairs, "--num-kv-pairs"):
        for rule in args.rules.split(","):
            new = run_point(args.seq_len, d_pairs, vocab, args.batch, rule, dtypes, device, args.seed, args.repeats)
            add_rows(rows, new, out=args.out, stem=STEM, env=env, markdown=markdown)
    return rows


if __name__ == "__main__":
    sys.exit(run_as_script(main, "mqarkit.gpu.grouped_lookup"))
