"""Many 2-layer MQAR models trained as one batched computation ("stacked" runs): the trunk, the mixers, the head.

Two topologies (``ModelConfig.layers``). ``"hybrid"``, the model of [B] Figure 2's attention, Based and
sliding-window configs (Zoology ``arxiv24_based_figure2``), per run::

    h = E[x]                                   # (B, N, d) token embedding, no position embedding
    block 0: r = h;        h = BaseConv_k3(LN1(r)), r = r + h, h = LN2(r)      # state mixer: Identity (no MLP)
    block 1: r = h + r;    h = Mixer(LN1(r)),       r = r + h, h = LN2(r)      # the mixer under test
    out = LN_f(h + r);  logits = out @ E^T     # tied LM head (untied optional)

which is Zoology's ``TransformerBlock`` with ``state_mixer = Identity`` exactly as the reference configs set it: no
MLP, and the block hands ``LN2(residual)`` to the next block, which adds it to the residual again. Dropout is 0.

``"mixer"``, the reference's own models of Mamba, H3, Hyena and RWKV ([B] Fig. 2, [Z] Fig. 2): block 0 is a second
instance of the family's mixer (``Mixer₀``, its own parameters, drawn after the trunk's and before block 1's from the
run's generator), in the block the family names (``StackedMixer.block_type``). ``"transformer"``: the lines above with
``BaseConv_k3`` replaced by ``Mixer₀``. ``"mamba"``, Zoology's ``MambaBlock`` (``zoology/mixers/mamba.py``:
RMSNorm, no bias, ε = 1e-5; no second norm; the last residual goes to ``LN_f``, a LayerNorm)::

    h = E[x]
    block 0: r = h;        h = Mixer₀(RMS0(r))
    block 1: r = r + h;    h = Mixer(RMS1(r))
    out = LN_f(r + h);  logits = out @ E^T

with ``RMS(x) = x / √(mean(x²) + ε) ⊙ w``. The reference keeps the residual in float32 (``residual_in_fp32``); so
does this model (the embedding and the residual adds are float32 under autocast).

Every parameter carries a leading run dimension ``R``; all runs see the same batch, so a step is one set of batched
matmuls over ``R``. This module owns everything but the mixer under test, which is a family implementing the mixer
protocol (:mod:`mqarkit.gpu.frontier.protocol`; the registered ones in :mod:`mqarkit.gpu.frontier.families`), or a
user's plain module (:mod:`mqarkit.gpu.frontier.user_mixers`).

Training and evaluation read the model only at the query positions: :meth:`StackedHybrid.hidden_at` computes layer 1
there only (the mixer's :meth:`~mqarkit.gpu.frontier.protocol.StackedMixer.forward_at`), which is the same function
as ``forward`` followed by a gather. On CUDA a hybrid's block 0 runs as the fused Triton kernels of
:mod:`mqarkit.gpu.frontier.kernels.fused_trunk` and the rest up to the head compiled (families that allow it); under
``layers = "mixer"`` everything after the embedding runs compiled (:func:`_hidden_at`, the generic trunk), block 0
through the family's own ``forward``.

:meth:`StackedHybrid.final_state` returns, for one run and one prefix, the tensors each layer carries in recurrent
mode; the frontier's state size is measured from them.
"""

from __future__ import annotations

import functools
import os

import torch
from torch import nn

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.families import family_class
from mqarkit.gpu.frontier.kernels.fused_trunk import fused_trunk, fused_trunk_available
from mqarkit.gpu.frontier.ops import gather_rows, init_conv, init_normal, layer_norm, linear, short_conv_gate
from mqarkit.gpu.frontier.protocol import StackedMixer
from mqarkit.gpu.frontier.user_mixers import ModuleMixer

# ---------------------------------------------------------------- compilation of the model between its kernels
RMS_EPS = 1e-5  # MambaBlock's norm_epsilon
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


def _hidden_at(model: StackedHybrid, h: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
    """:meth:`StackedHybrid.hidden_at` after the embedding ``h (R, B, N, d)``; ``qpos (B, D)`` -> ``(R, B·D, d)``."""
    r, u = model._trunk(h)
    return _layer1_at(model, u, gather_rows(r, qpos), qpos)


def _layer1_at(model: StackedHybrid, u: torch.Tensor, r_q: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
    """:func:`_hidden_at` after the trunk: ``u (R, B, N, d)`` (block 1's mixer input), ``r_q (R, B, D, d)`` (the
    residual at the query rows), ``qpos (B, D)`` -> ``(R, B·D, d)``."""
    out = model._tail(r_q, model.mixer.forward_at(u, qpos))  # (R, B, D, d)
    return out.reshape(out.shape[0], -1, out.shape[-1])


def _mark_dynamic(*marks: tuple[torch.Tensor, tuple[int, ...]]) -> None:
    """Mark the dims that vary from call to call (batch, length, queries; never ``R`` or ``d``) as dynamic."""
    for t, dims in marks:
        for dim in dims:
            torch._dynamo.maybe_mark_dynamic(t, dim)


def build_mixer(
    configs: list[ModelConfig], seeds: list[int], generators: list[torch.Generator], layer: int = 1
) -> StackedMixer:
    """Layer ``layer`` (1; 0 too under ``layers = "mixer"``) for the runs ``configs`` (one stack): the family's
    :class:`StackedMixer`, or a :class:`ModuleMixer` (layer 1 only)."""
    c0 = configs[0]
    if c0.mixer is not None:
        if layer != 1:
            raise ValueError(f"layer={layer}: a plain module is layer 1 of the hybrid only")
        return ModuleMixer(c0.d_model, c0.max_len, seeds, c0.mixer, c0.kwargs(), c0.mixer_cache)
    cls = family_class(c0.family)
    knobs = [c.knob_dict() for c in configs]
    if c0.layers == "hybrid":  # a user's family whose __init__ predates ``layer`` still builds the hybrid
        return cls(c0.d_model, c0.max_len, knobs, generators)
    return cls(c0.d_model, c0.max_len, knobs, generators, layer=layer)


def rms_norm(u: torch.Tensor, w: torch.Tensor, eps: float = RMS_EPS) -> torch.Tensor:
    """``u / √(mean(u²) + ε) ⊙ w`` over the last dim, in float32 at least, with a per-run weight ``w (R, d)``;
    ``u (R, ..., d)`` (mamba_ssm's ``RMSNorm``, no bias, as Zoology's ``MambaBlock`` builds it)."""
    acc = torch.promote_types(u.dtype, torch.float32)
    x = u.to(acc)
    y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return y * w.to(acc).view(w.shape[0], *([1] * (u.dim() - 2)), w.shape[-1])


# ---------------------------------------------------------------- the stacked model
class StackedHybrid(nn.Module):
    """``R`` independent runs of one architecture (they may differ in knobs); ``forward(x (B, N)) -> (R, B, N, d)``.

    ``configs`` one per run (equal :meth:`~ModelConfig.stack_key`), ``seeds`` one per run: run ``r``'s parameters
    are drawn from a generator seeded with ``seeds[r]`` (the trunk first, in a fixed order, then block 0's mixer under
    ``layers = "mixer"``, then block 1's), so a run never depends on its stack-mates.
    """

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
            raise ValueError(f"configs: runs in one stack need equal architectures but for their knobs: {keys}")
        self.configs = list(configs)
        c0 = configs[0]
        self.family, self.d, self.vocab, self.max_len = c0.family, c0.d_model, c0.vocab_size, c0.max_len
        self.runs, self.layers = len(configs), c0.layers
        self.block_type = "transformer" if self.layers == "hybrid" else family_class(c0.family).block_type
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        trunk = [self._init_trunk(c0, self.block_type, g) for g in generators]
        for name in trunk[0]:
            self.register_parameter(name, nn.Parameter(torch.stack([t[name] for t in trunk])))
        if self.layers == "mixer":
            self.mixer0 = build_mixer(self.configs, [int(s) for s in seeds], generators, layer=0)
        self.mixer = build_mixer(self.configs, [int(s) for s in seeds], generators)
        self.to(device)

    @staticmethod
    def _init_trunk(cfg: ModelConfig, block: str, g: torch.Generator) -> dict[str, torch.Tensor]:
        """One run's embedding, norms, layer 0 (hybrid: BaseConv, short filter) and untied head, drawn from ``g``.

        The norms of ``block``: ``"transformer"`` two LayerNorms per block (``ln0a ln0b``, ``ln1a ln1b``), ``"mamba"``
        one RMSNorm per block (``rms0 rms1``); ``lnf`` is a LayerNorm in both.
        """
        d, c, k = cfg.d_model, cfg.vocab_size, cfg.conv_kernel
        p = {"emb": init_normal((c, d), g)}
        if block == "mamba":
            p |= {"rms0_w": torch.ones(d), "rms1_w": torch.ones(d)}
        norms = ("lnf",) if block == "mamba" else ("ln0a", "ln0b", "ln1a", "ln1b", "lnf")
        for norm in norms:
            p |= {f"{norm}_w": torch.ones(d), f"{norm}_b": torch.zeros(d)}
        if cfg.layers == "hybrid":
            p |= {"c0_w": init_normal((d, d), g), "c0_b": torch.zeros(d), "c0_k": init_conv((d, k), g)}
            p["c0_kb"] = torch.zeros(d)
        if not cfg.tie_head:
            p["head"] = init_normal((d, c), g)
        return p

    def mixers(self) -> dict[str, StackedMixer]:
        """The mixers by attribute name: ``mixer`` (block 1), and ``mixer0`` (block 0) under ``layers = "mixer"``."""
        return {"mixer0": self.mixer0, "mixer": self.mixer} if self.layers == "mixer" else {"mixer": self.mixer}

    def gradient_masks(self) -> dict[str, torch.Tensor]:
        """Per-parameter 0/1 masks of the padded entries, by full parameter name (the optimiser multiplies by them)."""
        return {f"{a}.{n}": m for a, mixer in self.mixers().items() for n, m in mixer.gradient_masks().items()}

    def parameter_runs(self) -> dict[str, int]:
        """Parameters of one run only (no run axis), by full name: their run (a plain module's, one per run)."""
        return {f"{a}.{n}": r for a, mixer in self.mixers().items() for n, r in mixer.parameter_runs().items()}

    # ---- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, N)`` int64 -> final hidden states ``(R, B, N, d)`` (after ``LN_f``), at every position."""
        r, u = self._trunk(self.embed(self._checked_tokens(x)))
        return self._tail(r, self.mixer(u))

    def hidden_at(self, x: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The final hidden states at the positions ``qpos (B, D)`` of ``x (B, N)``: ``(R, B·D, d)``, row ``b·D + j``.

        Equal to ``forward(x)`` gathered at ``qpos``, computed with less work. Layer 1 is the last layer that mixes
        positions, and nothing reads its output except at the query rows, so only those rows are computed there (the
        mixer's ``forward_at``: attention runs ``D`` queries against the ``N`` keys), and what follows (residual
        adds, ``LN2``, ``LN_f``) runs on the ``B·D`` rows. Layer 0 and layer 1's keys and values are computed at every
        position, as they must be.

        On CUDA, a hybrid's block 0 and the norm that opens block 1 (the "trunk", embedding included) run as the fused
        Triton kernels of :mod:`mqarkit.gpu.frontier.kernels.fused_trunk`, and the rest up to the head runs compiled
        (:func:`_layer1_at`) when the family allows it (``compilable``). Where those kernels do not serve
        (``MQARKIT_FUSED_TRUNK=0``, and always under ``layers = "mixer"``), everything after the embedding runs compiled
        (:func:`_hidden_at`; block 0's mixer through its ``forward``, which ``compilable`` covers too); the embedding
        stays eager, its backward being a sort-and-segment-sum where the compiled form would add repeated tokens
        (mostly token 0 in MQAR) atomically into one row. ``MQARKIT_COMPILE=0`` runs the same functions eagerly.
        """
        x = self._checked_tokens(x)
        if qpos.dim() != 2 or qpos.shape[0] != x.shape[0]:
            raise ValueError(f"qpos: needs shape (B, D) with B = x.shape[0] = {x.shape[0]}, got {tuple(qpos.shape)}")
        if qpos.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"qpos: needs integer positions (int32 or int64), got {qpos.dtype}")
        compiled = self.emb.is_cuda and compile_enabled() and self.mixer.compilable
        if self.layers == "hybrid" and fused_trunk_available(self.emb, self.c0_k.shape[-1]):
            u_dtype = torch.float32 if self.mixer.keeps_float32_input else None
            u, r_q = fused_trunk(self, x, qpos, u_dtype=u_dtype)
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
        """From the embedding ``h (R, B, N, d)`` to block 1: its residual ``r`` and its mixer's input (``LN1(r)``;
        ``RMS1(r)`` in a Mamba block), ``(R, B, N, d)`` each."""
        r = h + self.mix0(self._norm0(h))
        if self.block_type == "mamba":
            return r, rms_norm(r, self.rms1_w)
        r = r + layer_norm(r, self.ln0b_w, self.ln0b_b)  # block 0 hands LN2(r) on, block 1 adds it to r
        return r, layer_norm(r, self.ln1a_w, self.ln1a_b)

    def _norm0(self, h: torch.Tensor) -> torch.Tensor:
        """The norm that opens block 0 (``LN1``; ``RMS0`` in a Mamba block); ``(R, ..., d)``."""
        return rms_norm(h, self.rms0_w) if self.block_type == "mamba" else layer_norm(h, self.ln0a_w, self.ln0a_b)

    def _tail(self, r: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """Row-wise end of block 1 and the final norm: ``LN_f(LN2(r + mixed) + r + mixed)`` (``LN_f(r + mixed)`` in a
        Mamba block); ``(R, ..., d)``."""
        r = r + mixed
        if self.block_type == "mamba":
            return layer_norm(r, self.lnf_w, self.lnf_b)
        return layer_norm(layer_norm(r, self.ln1b_w, self.ln1b_b) + r, self.lnf_w, self.lnf_b)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``emb[r, x]`` for every run: ``x (B, N)`` -> ``(R, B, N, d)``.

        One ``F.embedding`` over the flattened ``(R·c, d)`` table with run ``r``'s tokens offset by ``r·c``: its
        backward is a sort-and-segment-sum, whereas the advanced-indexing ``emb[:, x]`` backs up through an
        ``index_put_`` that accumulates repeated tokens one after another (MQAR inputs are mostly token 0).
        """
        offsets = torch.arange(self.runs, device=x.device)[:, None, None] * self.vocab
        return nn.functional.embedding(x[None] + offsets, self.emb.reshape(-1, self.d))

    def head_weight(self) -> torch.Tensor:
        """``(R, d, c)``: the LM head (``Eᵀ`` when tied)."""
        return self.emb.transpose(1, 2) if self.configs[0].tie_head else self.head

    def mix0(self, u: torch.Tensor) -> torch.Tensor:
        """Layer 0: Zoology BaseConv with a short conv, ``conv_k(u) ⊙ (W u + b) + u`` (hybrid), or block 0's mixer
        (``layers = "mixer"``); ``u (R, B, N, d)``."""
        if self.layers == "mixer":
            return self.mixer0(u)
        return short_conv_gate(u, self.c0_k, self.c0_kb, linear(u, self.c0_w, self.c0_b))

    # ---- recurrent state (for the measured state size)
    @torch.no_grad()
    def final_state(self, run: int, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], str]:
        """The tensors run ``run`` carries in recurrent mode after reading ``x (N,)`` (one example, unpadded), and how
        layer 1's were found (``"recurrent mode"``, or a plain module's form; ``{}`` with the reason if unmeasured).

        Policy: every layer's sequence-mixer state counts (layer 0's short-conv cache of the last ``k−1`` inputs
        included; the mixer's own conv caches included); normalisers (Based's ``z``) count; parameters do not. Under
        ``layers = "mixer"`` both mixers' carried tensors count (``layer0.*``, ``layer1.*``), each found from its
        layer's input as the stacked forward computes it.
        """
        if not 0 <= run < self.runs:
            raise ValueError(f"run={run}: needs 0 <= run < {self.runs}")
        if self.layers == "mixer":
            return self._final_state_mixers(run, x)
        k, n = self.c0_k.shape[-1], x.shape[0]
        p = {name: t[run : run + 1] for name, t in self.named_parameters() if not name.startswith("mixer.")}
        h = nn.functional.embedding(x[None, None], p["emb"][0])  # (1, 1, N, d)
        u0 = layer_norm(h, p["ln0a_w"], p["ln0a_b"])
        r = h + short_conv_gate(u0, p["c0_k"], p["c0_kb"], linear(u0, p["c0_w"], p["c0_b"]))
        r = r + layer_norm(r, p["ln0b_w"], p["ln0b_b"])
        u = layer_norm(r, p["ln1a_w"], p["ln1a_b"])[0, 0]  # (N, d): layer 1's input
        cache = nn.functional.pad(u0[0, 0], (0, 0, k - 1, 0))[n : n + k - 1]  # the last k−1 inputs (0 before x_0)
        mixed, how = self.mixer.measure_state(run, u)
        if not mixed:
            return {}, how
        return {"layer0.conv_cache": cache.float()} | {f"layer1.{name}": t for name, t in mixed.items()}, how

    def _final_state_mixers(self, run: int, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], str]:
        """:meth:`final_state` under ``layers = "mixer"``: ``x (N,)`` through every run's trunk (one example)."""
        h = self.embed(x[None])  # (R, 1, N, d)
        _, u = self._trunk(h)
        found = [mixer.measure_state(run, v[run, 0]) for mixer, v in ((self.mixer0, self._norm0(h)), (self.mixer, u))]
        if not all(states for states, _ in found):
            return {}, next(how for states, how in found if not states)
        out = {f"layer{i}.{name}": t for i, (states, _) in enumerate(found) for name, t in states.items()}
        return out, found[1][1]


def state_numbers(states: dict[str, torch.Tensor]) -> int:
    """Total count of numbers in a ``final_state`` dict."""
    return int(sum(t.numel() for t in states.values()))
