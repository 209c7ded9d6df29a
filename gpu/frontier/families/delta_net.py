"""DeltaNet: linear attention whose memory is corrected by the delta rule, as fla's ``DeltaNet`` layer (defaults).

Glossary (one run; ``u (B, N, d)`` layer 1's input; the knobs ``H`` heads of key width ``K``, value width ``V = K``)::

    q, k, v = SiLU(conv₄(u W_q)), SiLU(conv₄(u W_k)), SiLU(conv₄(u W_v))     per head (K,), (K,), (V,)
    q̂, k̂    = l2norm(q) / √K, l2norm(k)                                      l2norm(x) = x / √(Σx² + 1e-6)
    β_t     = σ(u_t W_β)                                                       one per head
    S_t     = S_{t−1} + β_t k̂_t (v_t − S_{t−1}ᵀ k̂_t)ᵀ                          K × V per head, S_{−1} = 0
    o_t     = S_tᵀ q̂_t
    out     = RMSNorm(o) W_o                 RMSNorm over each head's V channels, one weight (V,) for all heads

fla's layer defaults, followed here: ``expand_k = expand_v = 1`` (``V = K``), a short convolution (4 taps, no bias,
SiLU) on ``q, k, v``, ``use_beta``, ``qk_norm = "l2"`` inside the kernel, scale ``K^{-1/2}``, no output gate
(``use_gate=False``), ``norm_eps = 1e-5``. The head count and width are the knobs (fla ties ``H·K`` to ``d``; here it is
free, as in fla's ``GatedDeltaNet``). Parameters: projections ``N(0, 0.02²)`` (the reference harness's rule for every
linear map), the convolutions as PyTorch's ``Conv1d`` default ``U(±1/√4)``, the norm weight 1.

Fast path: on CUDA with fla, under autocast (half precision), fla's ``chunk_delta_rule`` with the runs folded into the
batch axis (:mod:`mqarkit.gpu.frontier.kernels.fla_delta`: fla refuses float32; runs of different heads or widths one
call per group at their own widths, :class:`~mqarkit.gpu.frontier.kernels.fla_heads.WidthGroups`), eager (see
``compilable``), its inputs ``q̂, k̂, v`` each from one Triton kernel that fuses the short convolution, SiLU, l2 norm
and scale (:mod:`mqarkit.gpu.frontier.kernels.short_conv`, in place of a chain of eager elementwise kernels and float32
round trips), and its output norm (gated in Gated DeltaNet) from another (:mod:`mqarkit.gpu.frontier.kernels.head_norm`;
the plain ``rms_norm`` wherever that does not serve); elsewhere the parallel form of :mod:`.recurrences` (no decay, ``a
= k̂``, ``b = −β k̂``, key ``β k̂``).
Recurrent mode carries ``S`` and the three convolutions' last 3 inputs: ``H·K·V + 3·(2·H·K + H·V)`` numbers, whatever
``N``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from mqarkit.gpu.frontier.families.heads import (
    CONV_TAPS,
    RunsGroupedByWidth,
    accumulation_dtype,
    l2_normalize,
    per_run,
    rms_norm,
    short_conv,
    short_conv_sequence,
    short_conv_step,
)
from mqarkit.gpu.frontier.families.recurrences import linear_recurrence
from mqarkit.gpu.frontier.kernels.fla_delta import (
    DPLR_CHUNK,
    compile_trial,
    delta_rule_available,
    fla_delta_rule,
    gated_route,
)
from mqarkit.gpu.frontier.kernels.fla_dqkwg import gated_op_elements
from mqarkit.gpu.frontier.kernels.fla_wy import WY_PAIR_TENSORS
from mqarkit.gpu.frontier.kernels.head_norm import head_rms_norm
from mqarkit.gpu.frontier.kernels.short_conv import short_conv_heads
from mqarkit.gpu.frontier.ops import fused_projection, init_conv, init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer


def delta_update(
    state: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token of the (gated) delta rule: ``S ← e^{g} S``, ``S ← S + β k (v − Sᵀk)ᵀ``, ``o = Sᵀ q``.

    ``state (B, H, K, V)``, ``q, k (B, H, K)``, ``v (B, H, V)``, ``beta, log_decay (B, H)`` (None: no decay) ->
    ``(new state, o (B, H, V))``.
    """
    if log_decay is not None:
        state = state * torch.exp(log_decay)[..., None, None]
    error = v - (state * k[..., None]).sum(-2)  # v − Sᵀk, (B, H, V)
    state = state + (beta[..., None] * k)[..., None] * error[..., None, :]
    return state, (state * q[..., None]).sum(-2)


class DeltaNet(RunsGroupedByWidth, StackedMixer):
    name = "delta_net"
    knobs = (
        Knob("heads", "h", help="H, the number of heads"),
        Knob("head_dim", "hd", help="K, the key width of each head (the value width follows)"),
    )
    VALUE_EXPAND = 1  # V = VALUE_EXPAND · K (fla's DeltaNet: expand_v / expand_k = 1)
    # Compiled (a trial), the harness's evaluation with autograd recording ran out of memory on an H100 at the test
    # length 1024 (a stack of 12 runs, batch 256: the activations a backward would need, kept for none; fla's
    # (B, N, H, 64) float32 WY matrix alone is 3 GiB a layer there, where training stops at 256 positions): the
    # delta rules evaluate without autograd, compiling an inference variant (docs/results/frontier_protocol.md,
    # eleventh session)
    evaluates_with_training_graph = False
    gated = False  # Gated DeltaNet: a decay per head and an output gate

    @property
    def compilable(self) -> bool:
        """Not compiled unless ``MQARKIT_COMPILE_DELTA_RULE=1`` (a trial): then the step compiles around fla's call (one
        opaque op, :func:`~mqarkit.gpu.frontier.kernels.fla_delta.fla_delta_rule_op`) or around the plain-torch
        recurrence where fla does not serve (``linear_recurrence`` is never traced: a graph break). On an H100 with
        torch 2.11 the compiled harness stack failed the first two times it was tried
        (docs/results/frontier_protocol.md): a stride assertion in the compiled backward once a second sequence
        length ran (K = 72, the modern preset; third and ninth sessions; ``ops.fused_projection`` says the likely
        cause and what now avoids it), and inductor's ``CantSplit`` on the plain-torch chunked recurrence when it was
        still traced (third session); in the eleventh the compiled models equalled the eager ones at two lengths, and
        the stack ran out of memory in its first evaluation (``evaluates_with_training_graph`` says why and what now
        avoids it)."""
        return compile_trial()

    @classmethod
    def widths(cls, knobs: Mapping[str, KnobValue]) -> tuple[int, int, int]:
        """``(H, K, V)`` of a run."""
        h, k = int(knobs["heads"]), int(knobs["head_dim"])
        return h, k, cls.VALUE_EXPAND * k

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, (h, k, v) = d_model, cls.widths(knobs)
        p = {
            "q_w": init_normal((d, h, k), generator),
            "k_w": init_normal((d, h, k), generator),
            "v_w": init_normal((d, h, v), generator),
            "beta_w": init_normal((d, h), generator),
        }
        p |= cls.init_gates(d, h, v, generator)
        p |= {
            "q_conv": init_conv((h, k, CONV_TAPS), generator),
            "k_conv": init_conv((h, k, CONV_TAPS), generator),
            "v_conv": init_conv((h, v, CONV_TAPS), generator),
            "norm_w": torch.ones(v),
            "o_w": init_normal((h, v, d), generator),
        }
        return p

    @classmethod
    def init_gates(cls, d: int, h: int, v: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The decay and output-gate parameters (Gated DeltaNet); DeltaNet has none."""
        return {}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        h, k, v = cls.widths(knobs)
        return h * k * v + (CONV_TAPS - 1) * (2 * h * k + h * v)

    def padded_widths(self) -> tuple[int, int, int]:
        """``(H, K, V)`` of the stack (the largest over its runs)."""
        return (*self.q_w.shape[-2:], self.v_w.shape[-1])

    def value_widths(self) -> torch.Tensor:
        """Each run's ``V``, ``(R,)``."""
        return self.VALUE_EXPAND * self.knob_tensor("head_dim")

    def head_norm(self, o: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        """The output norm of every head (gated: Gated DeltaNet), ``o (R, B, N, H, V)`` -> the same shape in ``o``'s
        dtype: one kernel each way where it serves
        (:func:`~mqarkit.gpu.frontier.kernels.head_norm.head_rms_norm`), else the plain rule ``rms_norm``."""
        return head_rms_norm(o, self.masked("norm_w"), self.value_widths(), gate)

    def fla_serves(self, device: torch.device, dtype: torch.dtype) -> bool:
        _, k, v = self.padded_widths()
        return delta_rule_available(device, dtype, k, v, self.gated)

    def intermediate_elements(self, seq_len: int) -> int:
        h, k, v = self.padded_widths()
        if self.fla_serves(self.q_w.device, torch.bfloat16):  # training runs under autocast
            fla = self.runs * seq_len * h * max(k, v, 64)
            if not self.gated:
                return fla
            if gated_route() == "dplr":  # its states entering each chunk of 16
                return max(fla, self.runs * -(-seq_len // DPLR_CHUNK) * h * k * v)
            return gated_op_elements(fla, self.runs, seq_len, h, WY_PAIR_TENSORS)  # where fla refuses: fla_wy's too
        return self.runs * h * seq_len * seq_len * 4  # the parallel form's (N, N) weights per head

    # ---------------------------------------------------------------- decay and output (Gated DeltaNet overrides)
    def log_decay(self, u: torch.Tensor) -> torch.Tensor | None:
        """``g (R, B, N, H)`` float32 at least (None: no decay)."""
        return None

    def output(self, o: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``o (R, B, N, H, V)`` -> the normed heads (before ``W_o``), in ``o``'s dtype."""
        return self.head_norm(o)

    def run_log_decay(self, p: dict[str, torch.Tensor], u: torch.Tensor) -> torch.Tensor | None:
        """One run: ``u (..., d)`` -> ``g (..., H)`` (None: no decay)."""
        return None

    def run_output(self, p: dict[str, torch.Tensor], o: torch.Tensor, u: torch.Tensor, run: int) -> torch.Tensor:
        """One run: ``o (..., H, V)`` -> ``(..., d)``."""
        return rms_norm(o, p["norm_w"], self.widths(self.run_knobs[run])[2]).flatten(-2) @ p["o_w"].flatten(0, 1)

    # ---------------------------------------------------------------- fast path (stacked)
    def inputs(self, u: torch.Tensor):
        """``q̂, k̂ (R, B, N, H, K)``, ``v (R, B, N, H, V)``, ``β (R, B, N, H)`` (float32 at least), the compute dtype
        (the projections' dtype: bf16 under autocast) and whether fla serves (:meth:`fla_serves`). Where it does,
        ``q̂, k̂, v`` come in the compute dtype, each from one fused kernel (convolution, SiLU, l2 norm, scale:
        :func:`~mqarkit.gpu.frontier.kernels.short_conv.short_conv_heads`); a run's zero padded channels and heads
        stay 0 and change no norm."""
        h, k, v = self.padded_widths()
        weights = [self.masked(n).flatten(2) for n in ("q_w", "k_w", "v_w")] + [self.masked("beta_w")]
        q, kk, vv, beta = fused_projection(u, weights)  # (R, B, N, H·K | H·V | H)
        work, acc = q.dtype, accumulation_dtype(q)
        fast, beta = self.fla_serves(u.device, work), torch.sigmoid(beta.to(acc))
        if fast:
            scale = self.knob_tensor("head_dim").to(torch.float32).rsqrt()
            q, kk, vv = (
                short_conv_heads(x, self.masked(n).flatten(1, 2), s, head_width=hw).unflatten(-1, (h, width))
                for x, n, s, hw, width in (
                    (q, "q_conv", scale, k, k),
                    (kk, "k_conv", None, k, k),
                    (vv, "v_conv", None, None, v),
                )
            )
            return q, kk, vv, beta, work, fast
        q, kk, vv = (
            short_conv(x, self.masked(n).flatten(1, 2)).to(acc).unflatten(-1, (h, w))
            for x, n, w in ((q, "q_conv", k), (kk, "k_conv", k), (vv, "v_conv", v))
        )
        scale = self.knob_tensor("head_dim").to(acc).rsqrt()
        return l2_normalize(q) * per_run(scale, q), l2_normalize(kk), vv, beta, work, fast

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        q, k, v, beta, work, fast = self.inputs(u)
        log_decay = self.log_decay(u)  # (R, B, N, H) or None
        if fast:  # q̂, k̂, v already in the compute dtype
            o = fla_delta_rule(q, k, v, beta.to(work), log_decay, self.fla_groups())
        else:  # the parallel form, heads before positions: a = k̂, b = −β e^{g} k̂, key β k̂
            key = beta[..., None] * k
            shrink = key if log_decay is None else key * torch.exp(log_decay)[..., None]
            g = None if log_decay is None else log_decay[..., None].transpose(2, 3)
            q, key, v, k, shrink = (t.transpose(2, 3) for t in (q, key, v, k, shrink))
            o = linear_recurrence(q, key, v, g, a=k, b=-shrink).transpose(2, 3)
        return linear(self.output(o, u).flatten(3).to(work), self.masked("o_w").flatten(1, 2))

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def run_inputs(self, run: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """One run's convolved ``q, k, v (..., H·K | H·V)`` -> ``q̂, k̂ (..., H, K)``, ``v (..., H, V)``."""
        h, kw, vw = self.widths(self.run_knobs[run])
        q, k, v = q.unflatten(-1, (h, kw)), k.unflatten(-1, (h, kw)), v.unflatten(-1, (h, vw))
        return l2_normalize(q) / math.sqrt(kw), l2_normalize(k), v

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """The sequential recurrence, token by token, after the whole-sequence convolutions."""
        p = self.run_parameters(run)
        q, k, v = (
            short_conv_sequence(u @ p[f"{n}_w"].flatten(1), p[f"{n}_conv"].flatten(0, 1)) for n in ("q", "k", "v")
        )
        q, k, v = self.run_inputs(run, q, k, v)
        beta, log_decay = torch.sigmoid(u @ p["beta_w"]), self.run_log_decay(p, u)  # (B, N, H)
        state = u.new_zeros(*q.shape[:1], *q.shape[2:], v.shape[-1])  # (B, H, K, V)
        outputs = []
        for t in range(u.shape[1]):
            g_t = None if log_decay is None else log_decay[:, t]
            state, o_t = delta_update(state, q[:, t], k[:, t], v[:, t], beta[:, t], g_t)
            outputs.append(o_t)
        return self.run_output(p, torch.stack(outputs, 1), u, run)

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        state = state or {}
        new: dict[str, torch.Tensor] = {}
        convolved = []
        for n in ("q", "k", "v"):
            y, new[f"{n}_conv_cache"] = short_conv_step(
                state.get(f"{n}_conv_cache"), u_t @ p[f"{n}_w"].flatten(1), p[f"{n}_conv"].flatten(0, 1)
            )
            convolved.append(y)
        q, k, v = self.run_inputs(run, *convolved)  # (B, H, ·)
        s = state.get("memory", u_t.new_zeros(*q.shape, v.shape[-1]))
        new["memory"], o = delta_update(s, q, k, v, torch.sigmoid(u_t @ p["beta_w"]), self.run_log_decay(p, u_t))
        return self.run_output(p, o, u_t, run), new
