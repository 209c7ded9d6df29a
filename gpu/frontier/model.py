"""Many 2-layer MQAR hybrids trained as one batched computation ("stacked" runs).

The model of [B] Figure 2 (Zoology ``arxiv24_based_figure2`` configs), per run::

    h = E[x]                                   # (B, N, d) token embedding, no position embedding
    block 0: r = h;        h = BaseConv_k3(LN1(r)), r = r + h, h = LN2(r)      # state mixer: Identity (no MLP)
    block 1: r = h + r;    h = Mixer(LN1(r)),       r = r + h, h = LN2(r)      # the mixer under test
    out = LN_f(h + r);  logits = out @ E^T     # tied LM head (untied optional)

which is Zoology's ``TransformerBlock`` with ``state_mixer = Identity`` exactly as the reference configs set it: no
MLP, and the block hands ``LN2(residual)`` to the next block, which adds it to the residual again. Dropout is 0.

Every parameter carries a leading run dimension ``R``; all runs see the same batch, so a step is one set of batched
matmuls (``torch.baddbmm``) over ``R``. Runs in one stack share family and ``d_model``; per-run knobs that change a
shape are padded to the stack's maximum and masked so that the padded part is exactly zero and receives no gradient:

- Based feature dim ``d'``: q/k projection columns beyond ``d'_r`` are multiplied by a fixed 0/1 mask, and the Taylor
  kernel uses ``s = q·k/√d'_r``, so ``φ(q)·φ(k) = 1 + s + s²/2`` is that of the unpadded model;
- SSM state ``d_state``: the B/C projection columns beyond ``d_state_r`` are masked, so padded state rows stay 0;
- sliding window ``w``: a per-run band mask (no shape change).

Mixers (``u``: ``(R, B, N, d)``):

- ``attention``: softmax attention, one head, fused biased qkv, scale ``1/√d``, causal (a token sees itself);
- ``based``: linear attention with the 2nd-order Taylor map, quadratic ("parallel") view
  ``y_i = Σ_{j≤i} K(q_i,k_j) v_j / (Σ_{j≤i} K(q_i,k_j) + 1e-12)``, ``K = 1 + s + s²/2``; bias-free projections
  (over whole sequences on CUDA computed by fla's flash-style kernels, :mod:`mqarkit.gpu.frontier.kernels.fla_taylor`,
  when fla is installed);
- ``sliding_window``: softmax attention over the ``w`` most recent tokens (itself included);
- ``ssm``: a selective SSM with scalar decay per head (Mamba-2 / SSD form), expansion 2, head dim 32, a causal
  depthwise conv (k=4, SiLU) on the input branch, input-dependent ``Δ_t, B_t, C_t``, output gate ``SiLU(z)``;
- ``long_conv``: BaseConv with an explicit per-channel filter of length ``max_len`` (FFT convolution),
  ``y = (h * u) ⊙ (W u + b) + u``.

Training and evaluation read the model only at the query positions: :meth:`StackedHybrid.hidden_at` computes layer 1
there only (its queries against every key; see the method), which is the same function as ``forward`` followed by a
gather, with layer 1's attention at ``D/N`` of its cost. On CUDA its block 0 runs as the fused Triton kernels of
:mod:`mqarkit.gpu.frontier.kernels.fused_trunk` and the rest up to the head compiled.

``final_state`` returns, for one run and one prefix, the tensors each layer carries in recurrent mode; the
frontier's state size is measured from them.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mqarkit.gpu.frontier.kernels.fla_taylor import fla_taylor_attention, fla_taylor_available
from mqarkit.gpu.frontier.kernels.fused_trunk import fused_trunk, fused_trunk_available
from mqarkit.gpu.frontier.ops import (
    causal_cumsum,
    causal_depthwise_conv,
    fft_causal_conv,
    gather_rows,
    layer_norm,
    linear,
    short_conv_gate,
)

FAMILIES = ("attention", "based", "sliding_window", "ssm", "long_conv")
SSM_EXPAND = 2
SSM_HEAD_DIM = 32
SSM_CONV = 4
INIT_STD = 0.02


@dataclass(frozen=True)
class ModelConfig:
    """One run's architecture. ``feature_dim`` (based), ``window`` (sliding_window), ``d_state`` (ssm)."""

    family: str
    d_model: int
    vocab_size: int = 8192
    max_len: int = 1024
    feature_dim: int | None = None
    window: int | None = None
    d_state: int | None = None
    conv_kernel: int = 3
    tie_head: bool = True

    def validate(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family={self.family!r}: must be one of {FAMILIES}")
        if self.d_model < 1:
            raise ValueError(f"d_model={self.d_model}: needs d_model >= 1")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size={self.vocab_size}: needs vocab_size >= 2")
        if self.max_len < 2:
            raise ValueError(f"max_len={self.max_len}: needs max_len >= 2")
        if self.conv_kernel < 1:
            raise ValueError(f"conv_kernel={self.conv_kernel}: needs conv_kernel >= 1")
        knobs = {"based": "feature_dim", "sliding_window": "window", "ssm": "d_state"}
        for fam, knob in knobs.items():
            value = getattr(self, knob)
            if self.family == fam and (value is None or value < 1):
                raise ValueError(f"{knob}={value}: family {fam!r} needs an integer {knob} >= 1")
            if self.family != fam and value is not None:
                raise ValueError(f"{knob}={value}: only family {fam!r} takes {knob} (family is {self.family!r})")
        if self.family == "ssm" and (SSM_EXPAND * self.d_model) % SSM_HEAD_DIM:
            raise ValueError(f"d_model={self.d_model}: ssm needs {SSM_EXPAND}*d_model divisible by {SSM_HEAD_DIM}")

    def stack_key(self) -> tuple:
        """Runs with equal keys can share one stack."""
        return (self.family, self.d_model, self.vocab_size, self.max_len, self.conv_kernel, self.tie_head)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- compilation of the model between its kernels
RECOMPILE_LIMIT = 64  # compiled variants kept per function: one per (family, d_model, R) of a sweep, with headroom


def compile_enabled() -> bool:
    """Whether :meth:`StackedHybrid.hidden_at` runs compiled on CUDA (``MQARKIT_COMPILE=0`` turns it off)."""
    return os.environ.get("MQARKIT_COMPILE", "1") != "0"


@functools.cache
def _compiled(fn):
    """``torch.compile`` of ``fn`` (:func:`_hidden_at` or :func:`_layer1_at`; built once per process, its variants
    are dynamo's recompiles).

    A sweep compiles one variant per stack shape (evaluation runs in training's grad mode and reuses it; the long
    convolution adds one per sequence length); dynamo's default limit (8 per function) would make the ninth variant
    of a sweep fall back to eager silently, hence the raised limit.
    """
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
    return torch.compile(fn)


# ---------------------------------------------------------------- stacked primitives


def taylor_kernel(q: torch.Tensor, k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``1 + s + s²/2`` with ``s = scale·q·kᵀ``; ``q, k (R, B, N, f)``, ``scale (R,)`` -> ``(R, B, N, N)``."""
    s = torch.matmul(q, k.transpose(-1, -2)) * scale[:, None, None, None]
    return 1 + s + 0.5 * s * s


class _TaylorAttention(torch.autograd.Function):
    """Causal normalised Taylor attention with the ``(R, B, N, N)`` scores recomputed in backward.

    With ``s_ij = q̂_i·k_j`` (the per-run scale folded into ``q̂ = q·scale``), ``K = 1 + s + s²/2`` and
    ``P = tril(s + s²/2)`` (the kernel without its constant term), the output is::

        num_i = Σ_{j≤i} K_ij v_j = (P v)_i + c_i,      c_i = Σ_{j≤i} v_j            (cumsum, float32)
        den_i = Σ_{j≤i} K_ij     = (P 1)_i + (i + 1)
        y_i   = num_i / (den_i + 1e-12)

    ``P v`` and ``P 1`` come from one matmul ``P @ [v | 1 | 0…]`` (the ones column padded to a multiple of 8 for the
    tensor cores); ``P`` is formed in place, ``s.addcmul_(s, s, 0.5)`` (one rounding per element; the constant 1,
    large next to the rest, never passes through the low-precision tile). Backward, with ``g = ∂L/∂y``::

        g_num = g / den,   g_den = −Σ_e g_e y_e / den
        ∂L/∂P = tril([g_num | g_den] @ [v | 1]ᵀ),    ∂L/∂s = ∂L/∂P ⊙ (1 + s)
        ∂L/∂v = Pᵀ g_num + revcumsum(g_num),   ∂L/∂q̂ = (∂L/∂s) k,   ∂L/∂k = (∂L/∂s)ᵀ q̂

    so only ``q̂, k, v, y, den`` (all ``O(N)``) are kept between passes: the quadratic tensors live one at a time
    in forward and three at a time in backward, in the matmul dtype (bf16 under autocast).
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # q, k (R, B, N, f), v (R, B, N, d), one dtype
        p = _taylor_rest(q, k)
        num, den = _num_den(p, v)
        y = (num / den[..., None]).to(v.dtype)
        ctx.save_for_backward(q, k, v, y, den)
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        q, k, v, y, den = ctx.saved_tensors
        acc = _acc_dtype(v)
        g_num = gy.to(acc) / den[..., None]  # (R, B, N, d)
        g_den = -(gy.to(acc) * y.to(acc)).sum(-1) / den  # (R, B, N)
        s = torch.matmul(q, k.transpose(-1, -2))  # (R, B, N, N)
        p = torch.addcmul(s, s, s, value=0.5).tril_()
        gv = torch.matmul(p.transpose(-1, -2), g_num.to(v.dtype)).to(acc)
        gv += g_num.flip(2).cumsum(2).flip(2)
        del p
        g_aug = torch.cat([g_num, g_den[..., None]], dim=-1).to(v.dtype)
        gp = torch.matmul(g_aug, _ones_column(v, pad=False).transpose(-1, -2))  # (R, B, N, N)
        gs = gp.addcmul_(gp, s).tril_()  # ∂L/∂P ⊙ (1 + s), causal part only
        del s
        gq = torch.matmul(gs, k)
        gk = torch.matmul(gs.transpose(-1, -2), q)
        return gq, gk, gv.to(v.dtype)


def _taylor_rest(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``P = tril(s + s²/2)``, ``s = q kᵀ``: ``(R, B, N, N)`` in the matmul dtype, formed in place."""
    s = torch.matmul(q, k.transpose(-1, -2))
    return s.addcmul_(s, s, value=0.5).tril_()


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for low-precision tensors, else their own dtype (float64 stays float64 for gradcheck)."""
    return torch.promote_types(t.dtype, torch.float32)


def _ones_column(v: torch.Tensor, pad: bool = True) -> torch.Tensor:
    """``[v | 1]`` (``pad``: then zeros up to a multiple of 8 columns), ``(R, B, N, d) -> (R, B, N, d + 1 [+ pad])``."""
    d = v.shape[-1]
    width = (d + 1 + 7) // 8 * 8 if pad else d + 1
    out = v.new_zeros(*v.shape[:-1], width)
    out[..., :d] = v
    out[..., d] = 1
    return out


def _num_den(p: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Numerator ``(R, B, N, d)`` and denominator ``(R, B, N)`` (float32) of the Taylor attention given ``P``."""
    d, n, acc = v.shape[-1], v.shape[2], _acc_dtype(v)
    pv = torch.matmul(p, _ones_column(v)).to(acc)
    num = pv[..., :d] + v.to(acc).cumsum(2)
    pos = torch.arange(1, n + 1, device=v.device, dtype=acc)
    den = pv[..., d] + pos + 1e-12
    return num, den


def taylor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``y_i = Σ_{j≤i} K(q_i,k_j) v_j / Σ_{j≤i} K(q_i,k_j)``, ``K = 1 + q·k + (q·k)²/2`` (scale already in ``q``).

    ``q, k (R, B, N, f)``, ``v (R, B, N, d)`` -> ``(R, B, N, d)``; custom backward: :class:`_TaylorAttention`.
    Inputs are cast to one dtype: bf16 under CUDA autocast, else ``v``'s dtype.
    """
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") and v.is_cuda else v.dtype
    with torch.autocast(v.device.type, enabled=False):
        return _TaylorAttention.apply(q.to(dtype), k.to(dtype), v.to(dtype))


def taylor_features(x: torch.Tensor) -> torch.Tensor:
    """Compressed 2nd-order Taylor features (no scale): ``[1, x_i, x_i²/√2, x_i x_j (i<j)]``, ``(..., f) -> (..., F)``.

    ``φ(q)·φ(k) = 1 + q·k + (q·k)²/2`` with ``F = 1 + f + f(f+1)/2`` (the diagonal carries ``1/√2``; each off-diagonal
    pair appears once, so its coefficient ``2·(1/2)`` is 1).
    """
    f = x.shape[-1]
    iu = torch.triu_indices(f, f, device=x.device)
    outer = x[..., iu[0]] * x[..., iu[1]]
    diag = (iu[0] == iu[1]).to(x.dtype)
    outer = outer * (diag / math.sqrt(2) + (1 - diag))
    return torch.cat([torch.ones_like(x[..., :1]), x, outer], dim=-1)


def ssm_decay(log_a: torch.Tensor) -> torch.Tensor:
    """``L[t, s] = exp(Σ_{r=s+1..t} log_a_r)`` for ``s ≤ t``, else 0; ``log_a (..., N)`` -> ``(..., N, N)``."""
    cs = torch.cumsum(log_a.float(), dim=-1)
    diff = cs[..., :, None] - cs[..., None, :]
    n = log_a.shape[-1]
    mask = torch.ones(n, n, dtype=torch.bool, device=log_a.device).tril()
    return torch.exp(diff.masked_fill(~mask, float("-inf")))


def _taylor_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal Taylor attention (scale in ``q``): fla's kernels on CUDA when available, else :func:`taylor_attention`."""
    attend = fla_taylor_attention if fla_taylor_available(q.device) else taylor_attention
    return attend(q, k, v)


def _hidden_at(model: StackedHybrid, h: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
    """:meth:`StackedHybrid.hidden_at` after the embedding ``h (R, B, N, d)``; ``qpos (B, D)`` -> ``(R, B·D, d)``."""
    r, u = model._trunk(h)
    return _layer1_at(model, u, gather_rows(r, qpos), qpos)


def _layer1_at(model: StackedHybrid, u: torch.Tensor, r_q: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
    """:func:`_hidden_at` after the trunk: ``u (R, B, N, d)`` (block 1's mixer input), ``r_q (R, B, D, d)`` (the
    residual at the query rows), ``qpos (B, D)`` -> ``(R, B·D, d)``."""
    parts = getattr(model, f"_seq_at_{model.family}")(u, qpos)  # layer 1's mixing at the query rows, (R, B, D, ·)
    out = model._tail(r_q, model._rows(*parts))  # (R, B, D, d)
    return out.reshape(out.shape[0], -1, out.shape[-1])


def _mark_dynamic(*marks: tuple[torch.Tensor, tuple[int, ...]]) -> None:
    """Mark the dims that vary from call to call (batch, length, queries; never ``R`` or ``d``) as dynamic."""
    for t, dims in marks:
        for dim in dims:
            torch._dynamo.maybe_mark_dynamic(t, dim)


# ---------------------------------------------------------------- the stacked model
class StackedHybrid(nn.Module):
    """``R`` independent runs of one family and ``d_model``; ``forward(x (B, N)) -> hidden (R, B, N, d)``."""

    def __init__(self, configs: list[ModelConfig], seeds: list[int], device: torch.device | str = "cpu"):
        super().__init__()
        if not configs:
            raise ValueError("configs=[]: needs at least one run")
        if len(seeds) != len(configs):
            raise ValueError(f"seeds: needs one seed per config ({len(seeds)} != {len(configs)})")
        for cfg in configs:
            cfg.validate()
        keys = {cfg.stack_key() for cfg in configs}
        if len(keys) != 1:
            raise ValueError(f"configs: runs in one stack need equal (family, d_model, vocab, max_len, k, tie): {keys}")
        self.configs = list(configs)
        c0 = configs[0]
        self.family, self.d, self.vocab, self.max_len = c0.family, c0.d_model, c0.vocab_size, c0.max_len
        self.runs = len(configs)
        d = self.d
        shapes = self._shapes(d, self.configs)
        # each run is initialised at its own (unpadded) shape from its own seed, then zero-padded
        per_run = [self._pad(self._init_run(self._shapes(d, [c]), seed), shapes) for c, seed in zip(configs, seeds)]
        for name in shapes:
            self.register_parameter(name, nn.Parameter(torch.stack([p[name] for p in per_run]).to(device)))
        self._make_masks(torch.device(device))

    # ---- parameter shapes and initialisation (per run, from its own seed: a run never depends on its stack-mates)
    @staticmethod
    def _pad(params: dict[str, torch.Tensor], shapes: dict) -> dict[str, torch.Tensor]:
        out = {}
        for name, t in params.items():
            extra = shapes[name][0][-1] - t.shape[-1]
            if extra and name == "bc_w":  # [B | C] halves padded separately
                b, c = t.chunk(2, dim=-1)
                t = torch.cat([F.pad(b, (0, extra // 2)), F.pad(c, (0, extra // 2))], dim=-1)
            elif extra:
                t = F.pad(t, (0, extra))
            out[name] = t
        return out

    def _shapes(self, d: int, configs: list[ModelConfig]) -> dict[str, tuple[tuple[int, ...], str]]:
        c0, k = configs[0], configs[0].conv_kernel
        s: dict[str, tuple[tuple[int, ...], str]] = {"emb": ((self.vocab, d), "normal")}
        for i in (0, 1):
            s |= {f"ln{i}a_w": ((d,), "one"), f"ln{i}a_b": ((d,), "zero")}
            s |= {f"ln{i}b_w": ((d,), "one"), f"ln{i}b_b": ((d,), "zero")}
        s |= {"lnf_w": ((d,), "one"), "lnf_b": ((d,), "zero")}
        s |= {"c0_w": ((d, d), "normal"), "c0_b": ((d,), "zero"), "c0_k": ((d, k), "conv"), "c0_kb": ((d,), "zero")}
        if not c0.tie_head:
            s["head"] = ((d, self.vocab), "normal")
        fam = self.family
        if fam in ("attention", "sliding_window"):
            s |= {"qkv_w": ((d, 3 * d), "normal"), "qkv_b": ((3 * d,), "zero")}
            s |= {"o_w": ((d, d), "normal"), "o_b": ((d,), "zero")}
        elif fam == "based":
            f = max(c.feature_dim for c in configs)
            s |= {"q_w": ((d, f), "normal"), "k_w": ((d, f), "normal"), "v_w": ((d, d), "normal")}
            s |= {"o_w": ((d, d), "normal")}
        elif fam == "ssm":
            n = max(c.d_state for c in configs)
            di = SSM_EXPAND * d
            h = di // SSM_HEAD_DIM
            s |= {"in_w": ((d, 2 * di), "normal"), "bc_w": ((d, 2 * n), "normal"), "dt_w": ((d, h), "normal")}
            s |= {"dt_b": ((h,), "dt"), "a_log": ((h,), "alog"), "skip": ((h,), "one")}
            s |= {"x_k": ((di, SSM_CONV), "conv"), "x_kb": ((di,), "zero"), "o_w": ((di, d), "normal")}
        elif fam == "long_conv":
            s |= {"l_w": ((d, d), "normal"), "l_b": ((d,), "zero"), "l_h": ((d, self.max_len), "filter")}
        return s

    def _init_run(self, shapes: dict, seed: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(seed))
        out = {}
        for name, (shape, kind) in shapes.items():
            if kind == "normal":
                t = torch.randn(shape, generator=g) * INIT_STD
            elif kind == "one":
                t = torch.ones(shape)
            elif kind == "zero":
                t = torch.zeros(shape)
            elif kind == "conv":  # PyTorch Conv1d default: U(-1/√k, 1/√k) for a depthwise kernel of k taps
                t = (torch.rand(shape, generator=g) * 2 - 1) / math.sqrt(shape[-1])
            elif kind == "filter":  # long filter decaying with the lag, so the conv starts near-local
                lags = torch.arange(shape[-1], dtype=torch.float32)
                t = torch.randn(shape, generator=g) * 0.02 * torch.exp(-lags / 64.0)
            elif kind == "dt":  # Δ in [1e-3, 1e-1] log-uniform, stored as softplus^{-1}
                dt = torch.exp(torch.rand(shape, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
                t = dt + torch.log(-torch.expm1(-dt))
            elif kind == "alog":  # A = -exp(a_log) in [-16, -1]
                t = torch.log(torch.rand(shape, generator=g) * 15 + 1)
            else:  # pragma: no cover
                raise AssertionError(kind)
            out[name] = t
        return out

    def _make_masks(self, device: torch.device) -> None:
        fam = self.family
        if fam == "based":
            f = self.q_w.shape[-1]
            dims = torch.tensor([c.feature_dim for c in self.configs], device=device)
            self.register_buffer("fmask", (torch.arange(f, device=device)[None, :] < dims[:, None]).float())
            self.register_buffer("fscale", 1.0 / dims.float().sqrt())
        elif fam == "ssm":
            n = self.bc_w.shape[-1] // 2
            dims = torch.tensor([c.d_state for c in self.configs], device=device)
            m = (torch.arange(n, device=device)[None, :] < dims[:, None]).float()
            self.register_buffer("smask", torch.cat([m, m], dim=1))
        elif fam == "sliding_window":
            self.register_buffer("windows", torch.tensor([c.window for c in self.configs], device=device))

    def gradient_masks(self) -> dict[str, torch.Tensor]:
        """Per-parameter 0/1 masks for padded entries (the optimiser multiplies updates by them)."""
        if self.family == "based":
            m = self.fmask[:, None, :].expand_as(self.q_w)
            return {"q_w": m, "k_w": m}
        if self.family == "ssm":
            return {"bc_w": self.smask[:, None, :].expand_as(self.bc_w)}
        return {}

    # ---- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, N)`` int64 -> final hidden states ``(R, B, N, d)`` (after ``LN_f``), at every position."""
        r, u = self._trunk(self.embed(self._checked_tokens(x)))
        return self._tail(r, self.mix1(u))

    def hidden_at(self, x: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The final hidden states at the positions ``qpos (B, D)`` of ``x (B, N)``: ``(R, B·D, d)``, row ``b·D + j``.

        Equal to ``forward(x)`` gathered at ``qpos``, computed with less work. Layer 1 is the last layer that mixes
        positions, and nothing reads its output except at the query rows, so only those rows are computed there:
        its attention runs ``D`` queries against the ``N`` keys (``O(N·D)`` instead of ``O(N²)``; the SSM's
        quadratic form likewise), and what follows (output projection, residual adds, ``LN2``, ``LN_f``) runs on the
        ``B·D`` rows. Layer 0 and layer 1's keys and values are computed at every position, as they must be. The
        long convolution is the exception: its FFT computes every position, which are then gathered.

        On CUDA, block 0 and the norm that opens block 1 (the "trunk", embedding included) run as the fused Triton
        kernels of :mod:`mqarkit.gpu.frontier.kernels.fused_trunk`, and the rest up to the head runs compiled
        (:func:`_layer1_at`). Where those kernels do not serve (``MQARKIT_FUSED_TRUNK=0``), everything after the
        embedding runs compiled (:func:`_hidden_at`); the embedding stays eager, its backward being a
        sort-and-segment-sum where the compiled form would add repeated tokens (mostly token 0 in MQAR) atomically into
        one row. ``MQARKIT_COMPILE=0`` runs the same functions eagerly.
        """
        x = self._checked_tokens(x)
        if qpos.dim() != 2 or qpos.shape[0] != x.shape[0]:
            raise ValueError(f"qpos: needs shape (B, D) with B = x.shape[0] = {x.shape[0]}, got {tuple(qpos.shape)}")
        if qpos.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"qpos: needs integer positions (int32 or int64), got {qpos.dtype}")
        compiled = self.emb.is_cuda and compile_enabled()
        if fused_trunk_available(self.emb, self.c0_k.shape[-1]):
            # the long convolution adds u itself (not a product of it) to its output: keep it float32 there
            u, r_q = fused_trunk(self, x, qpos, u_dtype=torch.float32 if self.family == "long_conv" else None)
            r_q = r_q.view(self.runs, *qpos.shape, self.d)
            if compiled:
                _mark_dynamic((u, (1, 2)), (r_q, (1, 2)), (qpos, (0, 1)))
                return _compiled(_layer1_at)(self, u, r_q, qpos)
            return _layer1_at(self, u, r_q, qpos)
        h = self.embed(x)
        if compiled:
            _mark_dynamic((h, (1, 2)), (qpos, (0, 1)))
            return _compiled(_hidden_at)(self, h, qpos)
        return _hidden_at(self, h, qpos)

    def _checked_tokens(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"x: needs token ids of shape (B, N), got {tuple(x.shape)}")
        if x.shape[1] > self.max_len:
            raise ValueError(f"x: seq_len={x.shape[1]} exceeds max_len={self.max_len}")
        return x

    def _trunk(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """From the embedding ``h (R, B, N, d)`` to block 1: its residual ``r`` and its mixer's input ``LN1(r)``."""
        r = h + self.mix0(layer_norm(h, self.ln0a_w, self.ln0a_b))
        r = r + layer_norm(r, self.ln0b_w, self.ln0b_b)  # block 0 hands LN2(r) on, block 1 adds it to r
        return r, layer_norm(r, self.ln1a_w, self.ln1a_b)

    def _tail(self, r: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """Row-wise end of block 1 and the final norm: ``LN_f(LN2(r + mixed) + r + mixed)``; ``(R, ..., d)``."""
        r = r + mixed
        return layer_norm(layer_norm(r, self.ln1b_w, self.ln1b_b) + r, self.lnf_w, self.lnf_b)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``emb[r, x]`` for every run: ``x (B, N)`` -> ``(R, B, N, d)``.

        One ``F.embedding`` over the flattened ``(R·c, d)`` table with run ``r``'s tokens offset by ``r·c``: its
        backward is a sort-and-segment-sum, whereas the advanced-indexing ``emb[:, x]`` backs up through an
        ``index_put_`` that accumulates repeated tokens one after another (MQAR inputs are mostly token 0).
        """
        offsets = torch.arange(self.runs, device=x.device)[:, None, None] * self.vocab
        return F.embedding(x[None] + offsets, self.emb.reshape(-1, self.d))

    def head_weight(self) -> torch.Tensor:
        """``(R, d, c)``: the LM head (``Eᵀ`` when tied)."""
        return self.emb.transpose(1, 2) if self.configs[0].tie_head else self.head

    def mix0(self, u: torch.Tensor) -> torch.Tensor:
        """Layer 0, Zoology BaseConv with a short conv: ``conv_k(u) ⊙ (W u + b) + u``."""
        return short_conv_gate(u, self.c0_k, self.c0_kb, linear(u, self.c0_w, self.c0_b))

    # Each mixer is a sequence part (``_seq_<family>``: mixes positions, returns per-position tensors) followed by a
    # row part (position by position, e.g. the output projection), so that :meth:`hidden_at` can run the row part on
    # the query rows only (with ``_seq_at_<family>``, the sequence part at those rows).
    ROW_PARTS = {
        "attention": "_rows_attention",
        "sliding_window": "_rows_attention",
        "based": "_rows_projection",
        "ssm": "_rows_projection",
        "long_conv": "_rows_long_conv",
    }

    def mix1(self, u: torch.Tensor) -> torch.Tensor:
        """Layer 1, the mixer under test: ``u (R, B, N, d)`` -> ``(R, B, N, d)``."""
        return self._rows(*getattr(self, f"_seq_{self.family}")(u))

    def _rows(self, *parts: torch.Tensor) -> torch.Tensor:
        """The family's row part on the sequence part's tensors (every position, or the query rows)."""
        return getattr(self, self.ROW_PARTS[self.family])(*parts)

    def _rows_attention(self, y: torch.Tensor) -> torch.Tensor:
        return linear(y, self.o_w, self.o_b)

    def _rows_projection(self, y: torch.Tensor) -> torch.Tensor:
        return linear(y, self.o_w)

    def _qkv(self, u):
        q, k, v = linear(u, self.qkv_w, self.qkv_b).chunk(3, dim=-1)
        return q, k, v

    def _seq_attention(self, u: torch.Tensor) -> tuple[torch.Tensor]:
        r, b, n, d = u.shape
        q, k, v = (t.reshape(r * b, 1, n, d) for t in self._qkv(u))
        return (F.scaled_dot_product_attention(q, k, v, is_causal=True).reshape(r, b, n, d),)

    def window_band(self, pos: torch.Tensor, n: int) -> torch.Tensor:
        """``(R, *pos.shape, N)`` bool: a query at position ``pos`` sees key ``s`` iff ``0 ≤ pos − s < w_r``."""
        lag = pos[..., None] - torch.arange(n, device=pos.device)
        return (lag >= 0) & (lag < self.windows.view(-1, *([1] * lag.dim())))

    def band_mask(self, n: int) -> torch.Tensor:
        """``(R, 1, N, N)`` bool: query ``i`` sees key ``j`` iff ``0 ≤ i − j < w_r``."""
        return self.window_band(torch.arange(n, device=self.windows.device), n)[:, None]

    def _seq_sliding_window(self, u: torch.Tensor) -> tuple[torch.Tensor]:
        q, k, v = self._qkv(u)
        return (F.scaled_dot_product_attention(q, k, v, attn_mask=self.band_mask(u.shape[2])),)

    def _based_qkv(self, u):
        """``q, k (R, B, N, f)`` (padded feature columns masked to 0) and ``v (R, B, N, d)`` from one batched matmul."""
        f, m = self.q_w.shape[-1], self.fmask[:, None, :]
        w = torch.cat([self.q_w * m, self.k_w * m, self.v_w], dim=-1)  # (R, d, 2f + d)
        q, k, v = linear(u, w).split([f, f, self.d], dim=-1)
        return q, k, v

    def _seq_based(self, u: torch.Tensor) -> tuple[torch.Tensor]:
        """Taylor attention by fla's kernels on CUDA (:mod:`mqarkit.gpu.frontier.kernels.fla_taylor`), else ours."""
        q, k, v = self._based_qkv(u)
        return (_taylor_attend(q * self.fscale[:, None, None, None].to(q.dtype), k, v),)

    def _mix_based_reference(self, u: torch.Tensor) -> torch.Tensor:
        """The direct quadratic form (materialises ``K``; plain autograd): the reference the tests compare with."""
        q, k, v = self._based_qkv(u)
        a = taylor_kernel(q.float(), k.float(), self.fscale).tril()  # (R, B, N, N), ≥ 1/2 on the causal part
        y = torch.matmul(a, v.float()) / (a.sum(-1, keepdim=True) + 1e-12)
        return linear(y.to(v.dtype), self.o_w)

    def _ssm_parts(self, u):
        r, b, n, _ = u.shape
        xz = linear(u, self.in_w)
        x, z = xz.chunk(2, dim=-1)  # (R, B, N, di)
        x = F.silu(causal_depthwise_conv(x, self.x_k, self.x_kb))
        bc = linear(u, self.bc_w * self.smask[:, None, :])
        bm, cm = bc.float().chunk(2, dim=-1)  # (R, B, N, n)
        dt = F.softplus(linear(u, self.dt_w).float() + self.dt_b[:, None, None, :])  # (R, B, N, H)
        a = -torch.exp(self.a_log.float())  # (R, H)
        heads = x.shape[-1] // SSM_HEAD_DIM
        xh = x.float().reshape(r, b, n, heads, SSM_HEAD_DIM)
        return x, z, bm, cm, dt, a, xh

    def _seq_ssm(self, u: torch.Tensor) -> tuple[torch.Tensor]:
        """``y_t = Σ_{s≤t} exp(Σ_{s<ρ≤t} Δ_ρ A) (C_t·B_s) Δ_s x_s + D x_t``, then ``⊙ SiLU(z)`` (before ``o_w``)."""
        r, b, n, _ = u.shape
        x, z, bm, cm, dt, a, xh = self._ssm_parts(u)
        decay = ssm_decay((dt * a[:, None, None, :]).permute(0, 1, 3, 2))  # (R, B, H, N, N)
        scores = torch.matmul(cm, bm.transpose(-1, -2))  # (R, B, N, N)
        w = decay * scores[:, :, None]  # (R, B, H, N, N)
        xdt = (xh * dt[..., None]).permute(0, 1, 3, 2, 4)  # (R, B, H, N, P)
        y = torch.matmul(w, xdt).permute(0, 1, 3, 2, 4)  # (R, B, N, H, P)
        y = y + xh * self.skip.float()[:, None, None, :, None]
        return (y.reshape(r, b, n, -1).to(u.dtype) * F.silu(z),)

    def _seq_long_conv(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return fft_causal_conv(u, self.l_h), u

    def _rows_long_conv(self, conv: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return conv * linear(u, self.l_w, self.l_b) + u

    # Layer 1's sequence part at the query rows only (see :meth:`hidden_at`): ``u (R, B, N, d)`` at every position,
    # ``qpos (B, D)`` -> tensors at the query rows ``(R, B, D, ·)``, the input of the family's row part.
    @staticmethod
    def _causal_at(qpos: torch.Tensor, n: int) -> torch.Tensor:
        """``(B, D, N)`` bool: query ``j`` (at position ``qpos[b, j]``) sees key position ``s`` iff ``s ≤ qpos``."""
        return torch.arange(n, device=qpos.device) <= qpos[..., None]

    def _qkv_at(self, u: torch.Tensor, qpos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q (R, B, D, d)`` at the query rows; ``k, v (R, B, N, d)`` at every position (attention's projections)."""
        d = self.d
        q = linear(gather_rows(u, qpos), self.qkv_w[..., :d], self.qkv_b[..., :d])
        k, v = linear(u, self.qkv_w[..., d:], self.qkv_b[..., d:]).chunk(2, dim=-1)
        return q, k, v

    def _seq_at_attention(self, u: torch.Tensor, qpos: torch.Tensor) -> tuple[torch.Tensor]:
        q, k, v = self._qkv_at(u, qpos)
        return (F.scaled_dot_product_attention(q, k, v, attn_mask=self._causal_at(qpos, u.shape[2])),)

    def _seq_at_sliding_window(self, u: torch.Tensor, qpos: torch.Tensor) -> tuple[torch.Tensor]:
        q, k, v = self._qkv_at(u, qpos)
        return (F.scaled_dot_product_attention(q, k, v, attn_mask=self.window_band(qpos, u.shape[2])),)

    def _seq_at_based(self, u: torch.Tensor, qpos: torch.Tensor) -> tuple[torch.Tensor]:
        """``y_j = Σ_{s≤t_j} K(q_j, k_s) v_s / Σ_{s≤t_j} K(q_j, k_s)``, ``K = 1 + q·k/√d' + (q·k/√d')²/2``.

        The ``(R, B, D, N)`` kernel matrix is formed directly (float32 from the matmul's scores; cast to the matmul
        dtype for its product with ``v``, as fla's kernel does; the denominator summed in float32).
        """
        f, m = self.q_w.shape[-1], self.fmask[:, None, :]
        wq = self.q_w * (m * self.fscale[:, None, None])  # the per-run 1/√d'_r folded into q's projection
        q = linear(gather_rows(u, qpos), wq)  # (R, B, D, f)
        k, v = linear(u, torch.cat([self.k_w * m, self.v_w], dim=-1)).split([f, self.d], dim=-1)
        s = torch.matmul(q, k.transpose(-1, -2)).float()  # (R, B, D, N)
        kern = torch.where(self._causal_at(qpos, u.shape[2]), 1 + s + 0.5 * s * s, 0.0)
        num = torch.matmul(kern.to(v.dtype), v).float()  # (R, B, D, d)
        return ((num / (kern.sum(-1, keepdim=True) + 1e-12)).to(v.dtype),)

    def _seq_at_ssm(self, u: torch.Tensor, qpos: torch.Tensor) -> tuple[torch.Tensor]:
        """The SSM's quadratic form at the query times ``t_j``: ``(R, B, D, N, H)`` decays instead of ``(…, N, N)``."""
        r, b, n, _ = u.shape
        x, z, bm, cm, dt, a, xh = self._ssm_parts(u)
        cs = causal_cumsum(dt * a[:, None, None, :])  # (R, B, N, H): Σ_{ρ≤t} Δ_ρ A
        gap = gather_rows(cs, qpos)[:, :, :, None] - cs[:, :, None]  # (R, B, D, N, H): Σ_{s<ρ≤t_j} Δ_ρ A
        causal = self._causal_at(qpos, n)[None, :, :, :, None]
        decay = torch.exp(gap.masked_fill(~causal, float("-inf")))
        scores = torch.matmul(gather_rows(cm, qpos), bm.transpose(-1, -2))  # (R, B, D, N)
        xdt = xh * dt[..., None]  # (R, B, N, H, P)
        y = torch.einsum("rbjsh,rbshp->rbjhp", decay * scores[..., None], xdt)  # (R, B, D, H, P)
        y = y + gather_rows(xh.flatten(3), qpos).unflatten(3, xh.shape[3:]) * self.skip.float()[:, None, None, :, None]
        return (y.flatten(3).to(u.dtype) * F.silu(gather_rows(z, qpos)),)

    def _seq_at_long_conv(self, u: torch.Tensor, qpos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(gather_rows(t, qpos) for t in self._seq_long_conv(u))  # the FFT computes every position

    # ---- recurrent state (for the measured state size)
    @torch.no_grad()
    def final_state(self, run: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensors run ``run`` carries in recurrent mode after reading ``x (N,)``, unpadded, one example.

        Policy: every layer's sequence-mixer state counts (layer 0's short-conv cache of the last ``k−1`` inputs
        included; the mixer's own conv caches included); normalisers (Based's ``z``) count; parameters do not.
        """
        cfg = self.configs[run]
        n = x.shape[0]
        sub = self.select(run)
        h = sub.embed(x[None])
        u0 = layer_norm(h, sub.ln0a_w, sub.ln0a_b)
        state = {"layer0.conv_cache": u0[0, 0, max(0, n - (cfg.conv_kernel - 1)) :].float()}
        r = h + sub.mix0(u0)
        r = r + layer_norm(r, sub.ln0b_w, sub.ln0b_b)
        u = layer_norm(r, sub.ln1a_w, sub.ln1a_b)  # (1, 1, N, d)
        fam = self.family
        if fam in ("attention", "sliding_window"):
            _, k, v = sub._qkv(u)
            keep = n if fam == "attention" else min(n, cfg.window)
            state |= {"layer1.k_cache": k[0, 0, n - keep :].float(), "layer1.v_cache": v[0, 0, n - keep :].float()}
        elif fam == "based":
            _, k, v = sub._based_qkv(u)
            f = cfg.feature_dim
            phi = taylor_features(k[0, 0, :, :f].float() * cfg.feature_dim**-0.25)  # (N, F)
            state |= {"layer1.kv": phi.T @ v[0, 0].float(), "layer1.z": phi.sum(0)}
        elif fam == "ssm":
            x_in, z, bm, cm, dt, a, xh = sub._ssm_parts(u)
            ns = cfg.d_state
            w = ssm_decay((dt * a[:, None, None, :]).permute(0, 1, 3, 2))[
                0, 0, :, -1, :
            ]  # (H, N): weight of s at t=N-1
            xdt = xh[0, 0] * dt[0, 0, :, :, None]  # (N, H, P)
            hstate = torch.einsum("hs,shp,sn->hpn", w, xdt, bm[0, 0, :, :ns])
            pre = linear(u, sub.in_w).chunk(2, dim=-1)[0]
            state |= {"layer1.ssm": hstate, "layer1.conv_cache": pre[0, 0, max(0, n - (SSM_CONV - 1)) :].float()}
        elif fam == "long_conv":
            state |= {"layer1.input_cache": u[0, 0].float()}
        return state

    def select(self, run: int) -> StackedHybrid:
        """A one-run view (a copy) of run ``run``."""
        sub = StackedHybrid.__new__(StackedHybrid)
        nn.Module.__init__(sub)
        sub.configs = [self.configs[run]]
        sub.family, sub.d, sub.vocab, sub.max_len, sub.runs = self.family, self.d, self.vocab, self.max_len, 1
        for name, p in self.named_parameters():
            sub.register_parameter(name, nn.Parameter(p.detach()[run : run + 1].clone()))
        for name, buf in self.named_buffers():
            sub.register_buffer(name, buf[run : run + 1].clone())
        return sub


def state_numbers(states: dict[str, torch.Tensor]) -> int:
    """Total count of numbers in a ``final_state`` dict."""
    return int(sum(t.numel() for t in states.values()))
