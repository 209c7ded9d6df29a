"""Many 2-layer MQAR hybrids trained as one batched computation ("stacked" runs): the trunk, a mixer, the head.

The model of [B] Figure 2 (Zoology ``arxiv24_based_figure2`` configs), per run::

    h = E[x]                                   # (B, N, d) token embedding, no position embedding
    block 0: r = h;        h = BaseConv_k3(LN1(r)), r = r + h, h = LN2(r)      # state mixer: Identity (no MLP)
    block 1: r = h + r;    h = Mixer(LN1(r)),       r = r + h, h = LN2(r)      # the mixer under test
    out = LN_f(h + r);  logits = out @ E^T     # tied LM head (untied optional)

which is Zoology's ``TransformerBlock`` with ``state_mixer = Identity`` exactly as the reference configs set it: no
MLP, and the block hands ``LN2(residual)`` to the next block, which adds it to the residual again. Dropout is 0.

Every parameter carries a leading run dimension ``R``; all runs see the same batch, so a step is one set of batched
matmuls over ``R``. This module owns everything but the mixer under test, which is a family implementing the mixer
protocol (:mod:`mqarkit.gpu.frontier.protocol`; the registered ones in :mod:`mqarkit.gpu.frontier.families`), or a
user's plain module (:mod:`mqarkit.gpu.frontier.user_mixers`).

Training and evaluation read the model only at the query positions: :meth:`StackedHybrid.hidden_at` computes layer 1
there only (the mixer's :meth:`~mqarkit.gpu.frontier.protocol.StackedMixer.forward_at`), which is the same function
as ``forward`` followed by a gather. On CUDA its block 0 runs as the fused Triton kernels of
:mod:`mqarkit.gpu.frontier.kernels.fused_trunk` and the rest up to the head compiled (families that allow it).

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


def build_mixer(configs: list[ModelConfig], seeds: list[int], generators: list[torch.Generator]) -> StackedMixer:
    """Layer 1 for the runs ``configs`` (one stack): the family's :class:`StackedMixer`, or a :class:`ModuleMixer`."""
    c0 = configs[0]
    if c0.mixer is not None:
        return ModuleMixer(c0.d_model, c0.max_len, seeds, c0.mixer, c0.kwargs(), c0.mixer_cache)
    return family_class(c0.family)(c0.d_model, c0.max_len, [c.knob_dict() for c in configs], generators)


# ---------------------------------------------------------------- the stacked model
class StackedHybrid(nn.Module):
    """``R`` independent runs of one architecture (they may differ in knobs); ``forward(x (B, N)) -> (R, B, N, d)``.

    ``configs`` one per run (equal :meth:`~ModelConfig.stack_key`), ``seeds`` one per run: run ``r``'s parameters
    are drawn from a generator seeded with ``seeds[r]`` (the trunk first, in a fixed order, then the mixer), so a run
    never depends on its stack-mates.
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
        self.runs = len(configs)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        trunk = [self._init_trunk(c0, g) for g in generators]
        for name in trunk[0]:
            self.register_parameter(name, nn.Parameter(torch.stack([t[name] for t in trunk])))
        self.mixer = build_mixer(self.configs, [int(s) for s in seeds], generators)
        self.to(device)

    @staticmethod
    def _init_trunk(cfg: ModelConfig, g: torch.Generator) -> dict[str, torch.Tensor]:
        """One run's embedding, norms, layer 0 (BaseConv, short filter) and untied head, drawn from ``g``."""
        d, c, k = cfg.d_model, cfg.vocab_size, cfg.conv_kernel
        p = {"emb": init_normal((c, d), g)}
        for norm in ("ln0a", "ln0b", "ln1a", "ln1b", "lnf"):
            p |= {f"{norm}_w": torch.ones(d), f"{norm}_b": torch.zeros(d)}
        p |= {"c0_w": init_normal((d, d), g), "c0_b": torch.zeros(d), "c0_k": init_conv((d, k), g)}
        p["c0_kb"] = torch.zeros(d)
        if not cfg.tie_head:
            p["head"] = init_normal((d, c), g)
        return p

    def gradient_masks(self) -> dict[str, torch.Tensor]:
        """Per-parameter 0/1 masks of the padded entries, by full parameter name (the optimiser multiplies by them)."""
        return {f"mixer.{n}": m for n, m in self.mixer.gradient_masks().items()}

    def parameter_runs(self) -> dict[str, int]:
        """Parameters of one run only (no run axis), by full name: their run (a plain module's, one per run)."""
        return {f"mixer.{n}": r for n, r in self.mixer.parameter_runs().items()}

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

        On CUDA, block 0 and the norm that opens block 1 (the "trunk", embedding included) run as the fused Triton
        kernels of :mod:`mqarkit.gpu.frontier.kernels.fused_trunk`, and the rest up to the head runs compiled
        (:func:`_layer1_at`) when the family allows it (``compilable``). Where those kernels do not serve
        (``MQARKIT_FUSED_TRUNK=0``), everything after the embedding runs compiled (:func:`_hidden_at`); the embedding
        stays eager, its backward being a sort-and-segment-sum where the compiled form would add repeated tokens
        (mostly token 0 in MQAR) atomically into one row. ``MQARKIT_COMPILE=0`` runs the same functions eagerly.
        """
        x = self._checked_tokens(x)
        if qpos.dim() != 2 or qpos.shape[0] != x.shape[0]:
            raise ValueError(f"qpos: needs shape (B, D) with B = x.shape[0] = {x.shape[0]}, got {tuple(qpos.shape)}")
        if qpos.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"qpos: needs integer positions (int32 or int64), got {qpos.dtype}")
        compiled = self.emb.is_cuda and compile_enabled() and self.mixer.compilable
        if fused_trunk_available(self.emb, self.c0_k.shape[-1]):
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
        return nn.functional.embedding(x[None] + offsets, self.emb.reshape(-1, self.d))

    def head_weight(self) -> torch.Tensor:
        """``(R, d, c)``: the LM head (``Eᵀ`` when tied)."""
        return self.emb.transpose(1, 2) if self.configs[0].tie_head else self.head

    def mix0(self, u: torch.Tensor) -> torch.Tensor:
        """Layer 0, Zoology BaseConv with a short conv: ``conv_k(u) ⊙ (W u + b) + u``."""
        return short_conv_gate(u, self.c0_k, self.c0_kb, linear(u, self.c0_w, self.c0_b))

    # ---- recurrent state (for the measured state size)
    @torch.no_grad()
    def final_state(self, run: int, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], str]:
        """The tensors run ``run`` carries in recurrent mode after reading ``x (N,)`` (one example, unpadded), and how
        layer 1's were found (``"recurrent mode"``, or a plain module's form; ``{}`` with the reason if unmeasured).

        Policy: every layer's sequence-mixer state counts (layer 0's short-conv cache of the last ``k−1`` inputs
        included; the mixer's own conv caches included); normalisers (Based's ``z``) count; parameters do not.
        """
        if not 0 <= run < self.runs:
            raise ValueError(f"run={run}: needs 0 <= run < {self.runs}")
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


def state_numbers(states: dict[str, torch.Tensor]) -> int:
    """Total count of numbers in a ``final_state`` dict."""
    return int(sum(t.numel() for t in states.values()))
