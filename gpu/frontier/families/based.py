"""Based: linear attention with the 2nd-order Taylor feature map, as the reference's ``Based`` mixer ([B] Fig. 2).

Per run, with feature dimension ``d'`` (the knob) and ``u (B, N, d)`` layer 1's input::

    q, k = u W_q, u W_k   (d × d', no bias)        v = u W_v   (d × d, no bias)
    s_ij = q_i·k_j / √d'                            K_ij = 1 + s_ij + s_ij²/2  = φ(q_i)·φ(k_j)
    y_i  = Σ_{j≤i} K_ij v_j / (Σ_{j≤i} K_ij + 1e-12)          out = y W_o

with ``φ(x) = [1, x, x_i²/√2, x_i x_j (i<j)]`` of ``x / d'^{1/4}`` (:func:`taylor_features`, ``F = 1 + d' + d'(d'+1)/2``
features). Runs of one stack may have different ``d'``: ``W_q, W_k`` are padded to the largest and masked.

Recurrent mode carries ``S = Σ_j φ(k_j) v_jᵀ`` (``F × d``) and the normaliser ``z = Σ_j φ(k_j)`` (``F``):
``(d + 1)·F`` numbers, whatever ``N``.

Fast path: the quadratic ("parallel") view. On CUDA with fla installed, fla's flash-style kernels
(:mod:`mqarkit.gpu.frontier.kernels.fla_taylor`); elsewhere our own form with the scores recomputed in backward
(:mod:`mqarkit.gpu.frontier.kernels.taylor_attention`). At the query rows, the ``(R, B, D, N)`` kernel directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from mqarkit.gpu.frontier.kernels.fla_taylor import fla_taylor_attention, fla_taylor_available
from mqarkit.gpu.frontier.kernels.taylor_attention import taylor_attention
from mqarkit.gpu.frontier.ops import gather_rows, init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer

EPS = 1e-12  # added to the denominator, which is ≥ (i + 1)/2 anyway (K ≥ 1/2)


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


def feature_count(feature_dim: int) -> int:
    """``F = 1 + d' + d'(d'+1)/2``: the length of :func:`taylor_features`."""
    return 1 + feature_dim + feature_dim * (feature_dim + 1) // 2


class Based(StackedMixer):
    name = "based"
    knobs = (Knob("feature_dim", "f", help="d', the width of q and k before the Taylor map"),)

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, f = d_model, int(knobs["feature_dim"])
        return {
            "q_w": init_normal((d, f), generator),
            "k_w": init_normal((d, f), generator),
            "v_w": init_normal((d, d), generator),
            "o_w": init_normal((d, d), generator),
        }

    def scales(self) -> torch.Tensor:
        """``1/√d'_r`` per run, ``(R,)`` in the parameters' dtype (float32; float64 for a float64 model)."""
        return 1.0 / self.knob_tensor("feature_dim").to(self.q_w.dtype).sqrt()

    # ---------------------------------------------------------------- fast path (stacked)
    def qkv(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q, k (R, B, N, f)`` (padded columns 0) and ``v (R, B, N, d)`` from one batched matmul."""
        f = self.q_w.shape[-1]
        w = torch.cat([self.masked("q_w"), self.masked("k_w"), self.v_w], dim=-1)  # (R, d, 2f + d)
        return linear(u, w).split([f, f, self.d], dim=-1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(u)
        attend = fla_taylor_attention if fla_taylor_available(q.device) else taylor_attention
        return linear(attend(q * self.scales()[:, None, None, None].to(q.dtype), k, v), self.o_w)

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The kernel of the ``D`` queries against the ``N`` keys, ``(R, B, D, N)``, formed directly (scores in
        float32 from the matmul, at least; cast to the matmul dtype for the product with ``v``, as fla's kernel does;
        the denominator summed in float32, at least)."""
        f = self.q_w.shape[-1]
        wq = self.masked("q_w") * self.scales()[:, None, None]  # the per-run 1/√d'_r folded into q's projection
        q = linear(gather_rows(u, qpos), wq)  # (R, B, D, f)
        k, v = linear(u, torch.cat([self.masked("k_w"), self.v_w], dim=-1)).split([f, self.d], dim=-1)
        acc = torch.promote_types(q.dtype, torch.float32)  # float32 under autocast; float64 stays float64
        s = torch.matmul(q, k.transpose(-1, -2)).to(acc)  # (R, B, D, N)
        causal = torch.arange(u.shape[2], device=u.device) <= qpos[..., None]  # (B, D, N)
        kern = torch.where(causal, 1 + s + 0.5 * s * s, 0.0)
        num = torch.matmul(kern.to(v.dtype), v).to(acc)  # (R, B, D, d)
        return linear((num / (kern.sum(-1, keepdim=True) + EPS)).to(v.dtype), self.o_w)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        p, f = self.run_parameters(run), int(self.run_knobs[run]["feature_dim"])
        q, k, v = u @ p["q_w"], u @ p["k_w"], u @ p["v_w"]
        s = q @ k.transpose(-1, -2) / math.sqrt(f)  # (B, N, N)
        kern = (1 + s + s * s / 2).tril()
        y = kern @ v / (kern.sum(-1, keepdim=True) + EPS)
        return y @ p["o_w"]

    def features(self, run: int, x: torch.Tensor) -> torch.Tensor:
        """``φ(x / d'^{1/4})`` for run ``run``: ``x (..., d')`` -> ``(..., F)``."""
        return taylor_features(x * float(self.run_knobs[run]["feature_dim"]) ** -0.25)

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        phi_q, phi_k = self.features(run, u_t @ p["q_w"]), self.features(run, u_t @ p["k_w"])  # (B, F)
        v = u_t @ p["v_w"]  # (B, d)
        kv = phi_k[:, :, None] * v[:, None, :] + (0 if state is None else state["kv"])  # (B, F, d)
        z = phi_k + (0 if state is None else state["z"])  # (B, F)
        y = (phi_q[:, None] @ kv)[:, 0] / ((phi_q * z).sum(-1, keepdim=True) + EPS)
        return y @ p["o_w"], {"kv": kv, "z": z}

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """``S`` and ``z`` after ``u (N, d)``, in one pass (what :meth:`step` carries; the tests compare the two)."""
        p = self.run_parameters(run)
        phi = self.features(run, u @ p["k_w"])  # (N, F)
        return {"kv": phi.T @ (u @ p["v_w"]), "z": phi.sum(0)}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        return (d_model + 1) * feature_count(int(knobs["feature_dim"]))
