"""Based linear attention with the second-order Taylor feature map (theory.md §2.3).

Glossary: ``d'`` = ``feature_dim`` (projected q/k width per head), ``H`` heads, ``e = d / H`` value width per head,
``F`` = feature width. Projections are bias-free (as zoology's ``Based``): ``q, k = x Wq^T, x Wk^T: (B, N, H, d')``,
``v = x Wv^T: (B, N, H, e)``, ``out = y Wo^T``.

Feature map: ``φ(x) = [1, x / d'^{1/4}, x⊗x / (√2·√d')]`` so that ``φ(q)·φ(k) = 1 + s + s²/2`` with
``s = q·k/√d'``, the Taylor polynomial of ``exp(s)``.

- ``layout="full"`` materialises ``vec(x xᵀ)``: ``F = 1 + d' + d'²`` (what zoology's module computes);
- ``layout="compressed"`` keeps each unordered product once, the diagonal ``x_i²/(√2√d')`` and ``x_i x_j/√d'`` for
  ``i < j``: ``Σ_i x_i² y_i²/(2d') + Σ_{i<j} x_i x_j y_i y_j / d' = (x·y)²/(2d')``, the same kernel with
  ``F = 1 + d' + d'(d'+1)/2``.

Output (zoology's normalisation): ``y_i = Σ_{j<=i} K(q_i, k_j) v_j / (Σ_{j<=i} K(q_i, k_j) + ε)``. The kernel is
``½((s+1)² + 1) >= ½``, so the denominator is at least ``(i+1)/2``.

Forms: ``parallel`` (quadratic: the ``N x N`` kernel matrix, masked), ``chunked`` (quadratic inside chunks of ``C``
positions, the linear state ``S = Σ φ(k)ᵀ v``, ``z = Σ φ(k)`` across chunks), ``recurrent`` (``S, z`` updated per
step; state ``H·F·e + H·F`` numbers), ``reference`` (explicit features and cumulative sums of outer products).
``impl="auto"`` uses ``fla.ops.based.parallel_based`` on CUDA when ``fla`` is importable and the dtype is
float32/bf16/fp16; fla scales ``q`` by ``d'^{-1/2}`` and uses ``1 + x + x²/2`` (our kernel); its own normaliser adds
``1e-6``, so we call it with ``use_norm=False`` on ``[v, 1]`` and divide by the last column ``+ ε`` ourselves.
"""

from __future__ import annotations

import importlib.util
import math

import torch
from torch import nn

from mqarkit.gpu.device import (
    check_choice,
    check_parameter_memory,
    check_positive_int,
    check_sequence_input,
    check_step_input,
)
from mqarkit.gpu.state import RecurrentMixer, State

LAYOUTS = ("full", "compressed")
IMPLS = ("auto", "torch", "fla")
FLA_KERNELS = ("parallel", "fused_chunk")
FLA_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def feature_width(feature_dim: int, layout: str) -> int:
    """``F``: ``1 + d' + d'²`` (full) or ``1 + d' + d'(d'+1)/2`` (compressed)."""
    quad = feature_dim * feature_dim if layout == "full" else feature_dim * (feature_dim + 1) // 2
    return 1 + feature_dim + quad


def taylor_features(x: torch.Tensor, layout: str) -> torch.Tensor:
    """``φ(x)``: ``x: (..., d') -> (..., F)``."""
    dp = x.shape[-1]
    ones = torch.ones_like(x[..., :1])
    linear = x / dp**0.25
    outer = x.unsqueeze(-1) * x.unsqueeze(-2)  # (..., d', d')
    if layout == "full":
        quad = outer.flatten(-2) / (math.sqrt(2) * math.sqrt(dp))
    else:
        rows, cols = torch.triu_indices(dp, dp, offset=1, device=x.device)
        diag = torch.diagonal(outer, dim1=-2, dim2=-1) / (math.sqrt(2) * math.sqrt(dp))
        quad = torch.cat([diag, outer[..., rows, cols] / math.sqrt(dp)], dim=-1)
    return torch.cat([ones, linear, quad], dim=-1)


def fla_available() -> bool:
    """Whether ``fla`` (fla-core) can be imported; nothing is imported here."""
    return importlib.util.find_spec("fla") is not None


class BasedLinearAttention(RecurrentMixer):
    """Taylor-map linear attention ``(B, N, d) -> (B, N, d)``."""

    def __init__(
        self,
        d_model: int,
        feature_dim: int = 16,
        num_heads: int = 1,
        layout: str = "full",
        eps: float = 1e-12,
        impl: str = "auto",
        chunk_size: int = 64,
    ) -> None:
        super().__init__()
        check_positive_int(d_model, "d_model")
        check_positive_int(feature_dim, "feature_dim")
        check_positive_int(num_heads, "num_heads")
        check_positive_int(chunk_size, "chunk_size")
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads}: must divide d_model={d_model}")
        if not (isinstance(eps, float) and eps >= 0):
            raise ValueError(f"eps={eps!r}: must be a float >= 0")
        self.layout = check_choice(layout, "layout", LAYOUTS)
        self.impl = check_choice(impl, "impl", IMPLS)
        self.d_model, self.feature_dim, self.num_heads, self.eps = d_model, feature_dim, num_heads, eps
        self.head_dim, self.chunk_size = d_model // num_heads, chunk_size
        check_parameter_memory(
            type(self).__name__,
            2 * d_model * (feature_dim * num_heads + d_model),
            parameter=f"d_model={d_model}, feature_dim={feature_dim}, num_heads={num_heads}",
        )
        self.proj_q = nn.Linear(d_model, feature_dim * num_heads, bias=False)
        self.proj_k = nn.Linear(d_model, feature_dim * num_heads, bias=False)
        self.proj_v = nn.Linear(d_model, d_model, bias=False)
        self.proj_o = nn.Linear(d_model, d_model, bias=False)

    @property
    def num_features(self) -> int:
        return feature_width(self.feature_dim, self.layout)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x: (..., d)`` -> ``q, k: (..., H, d')``, ``v: (..., H, e)``."""
        h = self.num_heads
        q = self.proj_q(x).unflatten(-1, (h, self.feature_dim))
        k = self.proj_k(x).unflatten(-1, (h, self.feature_dim))
        v = self.proj_v(x).unflatten(-1, (h, self.head_dim))
        return q, k, v

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        """``y: (B, N, H, e) -> (B, N, d)``."""
        return self.proj_o(y.flatten(-2))

    # ---- dispatch ------------------------------------------------------------------------------------------------
    def uses_fla(self, x: torch.Tensor) -> bool:
        """Whether ``forward(x)`` runs fla's Triton kernel."""
        if self.impl == "torch":
            return False
        usable = x.is_cuda and x.dtype in FLA_DTYPES and fla_available()
        if self.impl == "fla" and not usable:
            raise RuntimeError(
                f"impl='fla': needs a CUDA input (got device={x.device}), dtype in float32/bf16/fp16 "
                f"(got {x.dtype}) and an importable `fla` (fla-core; available={fla_available()})"
            )
        return usable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_sequence_input(x, self.d_model)
        if self.uses_fla(x):
            return self.fla(x)
        if x.shape[1] <= self.chunk_size:
            return self.parallel(x)
        return self.chunked(x)

    # ---- quadratic -----------------------------------------------------------------------------------------------
    def _kernel(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``K = 1 + s + s²/2``, ``s = q·k/√d'``: ``q: (B, I, H, d'), k: (B, J, H, d') -> (B, H, I, J)``."""
        s = torch.einsum("bihf,bjhf->bhij", q, k) / math.sqrt(self.feature_dim)
        return 1 + s + 0.5 * s * s

    def parallel(self, x: torch.Tensor) -> torch.Tensor:
        """Quadratic form: the masked ``N x N`` kernel matrix; ``O(N²)`` work."""
        check_sequence_input(x, self.d_model)
        q, k, v = self._qkv(x)
        n = x.shape[1]
        kern = self._kernel(q, k)
        kern = kern * torch.ones(n, n, device=x.device, dtype=torch.bool).tril()
        num = torch.einsum("bhij,bjhe->bihe", kern, v)
        den = kern.sum(-1).transpose(1, 2).unsqueeze(-1)  # (B, N, H, 1)
        return self._out(num / (den + self.eps))

    # ---- chunked -------------------------------------------------------------------------------------------------
    def chunked(self, x: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Quadratic inside chunks of ``C`` positions plus the linear state of earlier chunks: ``O(N·C + N·F·e)``."""
        check_sequence_input(x, self.d_model)
        c = self.chunk_size if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
        q, k, v = self._qkv(x)
        b, n = x.shape[:2]
        nc = -(-n // c)
        pad = nc * c - n
        # Zero-padded keys would add K(q, 0) = 1 to later normalisers; the padding is at the end, after every real
        # query, so no real query sees it.
        qc, kc, vc = (torch.nn.functional.pad(t, (0, 0, 0, 0, 0, pad)).unflatten(1, (nc, c)) for t in (q, k, v))
        phi_q = taylor_features(qc, self.layout)  # (B, nc, C, H, F)
        phi_k = taylor_features(kc, self.layout)
        if pad:
            valid = (torch.arange(nc * c, device=x.device) < n).to(phi_k.dtype).view(1, nc, c, 1, 1)
            phi_k = phi_k * valid
        kv_chunk = torch.einsum("bncHf,bncHe->bnHfe", phi_k, vc)  # per-chunk Σ φ(k)ᵀ v
        z_chunk = phi_k.sum(2)  # (B, nc, H, F)
        s_prev = torch.cumsum(kv_chunk, dim=1) - kv_chunk  # exclusive prefix over chunks
        z_prev = torch.cumsum(z_chunk, dim=1) - z_chunk
        num_inter = torch.einsum("bncHf,bnHfe->bncHe", phi_q, s_prev)
        den_inter = torch.einsum("bncHf,bnHf->bncH", phi_q, z_prev)
        s = torch.einsum("bniHf,bnjHf->bnHij", qc, kc) / math.sqrt(self.feature_dim)
        kern = (1 + s + 0.5 * s * s) * torch.ones(c, c, device=x.device, dtype=torch.bool).tril()
        num_intra = torch.einsum("bnHij,bnjHe->bniHe", kern, vc)
        den_intra = kern.sum(-1).transpose(2, 3)  # (B, nc, C, H)
        y = (num_inter + num_intra) / (den_inter + den_intra + self.eps).unsqueeze(-1)
        return self._out(y.flatten(1, 2)[:, :n])

    # ---- fla -----------------------------------------------------------------------------------------------------
    def fla(self, x: torch.Tensor, kernel: str = "parallel") -> torch.Tensor:
        """fla-core's Triton kernels (``parallel_based`` / ``fused_chunk_based``) with our ``ε`` normaliser."""
        check_choice(kernel, "kernel", FLA_KERNELS)
        from fla.ops.based import fused_chunk_based, parallel_based  # optional dependency, imported lazily

        q, k, v = self._qkv(x)  # (B, T, H, ·): fla's layout
        v_aug = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)
        fn = parallel_based if kernel == "parallel" else fused_chunk_based
        o = fn(q.contiguous(), k.contiguous(), v_aug.contiguous(), scale=self.feature_dim**-0.5, use_norm=False)
        y = o[..., :-1] / (o[..., -1:] + self.eps)
        return self._out(y.to(x.dtype))

    # ---- reference -----------------------------------------------------------------------------------------------
    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """Explicit features: ``y_i = φ(q_i)·Σ_{j<=i} φ(k_j)ᵀ v_j / (φ(q_i)·Σ_{j<=i} φ(k_j) + ε)``."""
        check_sequence_input(x, self.d_model)
        q, k, v = self._qkv(x)
        phi_q, phi_k = taylor_features(q, self.layout), taylor_features(k, self.layout)  # (B, N, H, F)
        kv = torch.cumsum(phi_k.unsqueeze(-1) * v.unsqueeze(-2), dim=1)  # (B, N, H, F, e)
        z = torch.cumsum(phi_k, dim=1)  # (B, N, H, F)
        num = (phi_q.unsqueeze(-1) * kv).sum(-2)
        den = (phi_q * z).sum(-1, keepdim=True)
        return self._out(num / (den + self.eps))

    # ---- recurrent -----------------------------------------------------------------------------------------------
    def init_state(self, batch_size: int, *, device=None, dtype=None) -> State:
        check_positive_int(batch_size, "batch_size")
        device, dtype = self._state_device_dtype(device, dtype)
        h, f, e = self.num_heads, self.num_features, self.head_dim
        return {
            "S": torch.zeros(batch_size, h, f, e, device=device, dtype=dtype),
            "z": torch.zeros(batch_size, h, f, device=device, dtype=dtype),
        }

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        check_step_input(x_t, self.d_model)
        q, k, v = self._qkv(x_t)  # (B, H, ·)
        phi_q, phi_k = taylor_features(q, self.layout), taylor_features(k, self.layout)  # (B, H, F)
        s_new = state["S"] + phi_k.unsqueeze(-1) * v.unsqueeze(-2)
        z_new = state["z"] + phi_k
        num = torch.einsum("bhf,bhfe->bhe", phi_q, s_new)
        den = (phi_q * z_new).sum(-1, keepdim=True)
        return self._out(num / (den + self.eps)), {"S": s_new, "z": z_new}

    def state_formula(self, seq_len: int) -> int:
        check_positive_int(seq_len, "seq_len")
        h, f, e = self.num_heads, self.num_features, self.head_dim
        return h * f * e + h * f
