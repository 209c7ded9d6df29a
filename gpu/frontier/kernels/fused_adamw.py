"""One AdamW update of a stacked parameter in a single pass over memory: a Triton kernel and its reference.

Symbols (per element of a parameter ``p``, all float32): ``g`` gradient, ``m``, ``v`` first and second moments,
``lr`` the element's learning rate (run ``r``'s rate times the padding mask,
:class:`~mqarkit.gpu.frontier.optim.StackedAdamW`),
``β1, β2, ε, λ`` (weight decay), ``t`` the step count after this step, ``f`` the schedule factor. The update::

    m ← m + (1 − β1)(g − m)                      (torch.lerp with weight 1 − β1)
    v ← β2·v + (1 − β2)·g²
    u ← (m / (√v · c2 + ε)) · c1 + λ·p           c1 = 1 / (1 − β1^t),  c2 = 1 / √(1 − β2^t)
    p ← p + (u · lr) · (−f)

:func:`adamw_reference` is the same sequence of ``torch._foreach_*`` operations over a list of parameters (one kernel
per operation and list: about twelve passes over memory, with two temporaries). :func:`adamw_fused` reads ``p, g, m,
v, lr`` once and writes ``p, m, v`` once per parameter, in the same order of float32 operations. The scalars ``c1,
c2, −f`` are read from device memory by the kernel, so a step can be recorded in a CUDA graph and replayed.

Dispatch: the kernel serves contiguous float32 CUDA tensors (any device under the Triton interpreter,
``TRITON_INTERPRET=1`` at import) when triton imports and ``MQARKIT_FUSED_ADAMW`` is not ``0`` (read per call);
everything else takes the reference.
"""

from __future__ import annotations

import torch

from mqarkit.gpu.device import kernel_switched_on, runs_interpreted

try:  # guarded: CI and CPU machines have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

BLOCK = 2048  # elements per program: 8 KB per float32 stream, enough to saturate memory on Hopper


def adamw_reference(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    lrs: list[torch.Tensor],
    scalars: torch.Tensor,
    *,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> None:
    """The update of the module docstring with ``torch._foreach_*`` ops, in place; ``scalars (3,)`` = ``c1, c2, −f``."""
    b1, b2 = betas
    c1, c2, neg_f = scalars[0], scalars[1], scalars[2]
    torch._foreach_lerp_(ms, grads, 1 - b1)
    torch._foreach_mul_(vs, b2)
    torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
    denom = torch._foreach_sqrt(vs)
    torch._foreach_mul_(denom, c2)
    torch._foreach_add_(denom, eps)
    upd = torch._foreach_div(ms, denom)
    torch._foreach_mul_(upd, c1)
    torch._foreach_add_(upd, params, alpha=weight_decay)
    torch._foreach_mul_(upd, lrs)
    torch._foreach_mul_(upd, neg_f)
    torch._foreach_add_(params, upd)


if triton is not None:

    @triton.jit
    def _adamw_kernel(
        p_ptr, g_ptr, m_ptr, v_ptr, lr_ptr, s_ptr, n, one_m_b1, b2, one_m_b2, eps, wd, BLOCK: tl.constexpr
    ):  # p, g, m, v, lr: (n,) float32 contiguous; s: (3,) float32 = c1, c2, −f
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        ok = offs < n
        p = tl.load(p_ptr + offs, mask=ok)
        g = tl.load(g_ptr + offs, mask=ok)
        m = tl.load(m_ptr + offs, mask=ok)
        v = tl.load(v_ptr + offs, mask=ok)
        lr = tl.load(lr_ptr + offs, mask=ok)
        c1, c2, neg_f = tl.load(s_ptr), tl.load(s_ptr + 1), tl.load(s_ptr + 2)
        m = m + one_m_b1 * (g - m)
        v = v * b2 + one_m_b2 * (g * g)
        upd = m / (tl.sqrt_rn(v) * c2 + eps) * c1 + wd * p
        p = p + (upd * lr) * neg_f
        tl.store(p_ptr + offs, p, mask=ok)
        tl.store(m_ptr + offs, m, mask=ok)
        tl.store(v_ptr + offs, v, mask=ok)

    _INTERPRETED = runs_interpreted(_adamw_kernel)
else:  # pragma: no cover - depends on the environment
    _INTERPRETED = False


def fused_available(t: torch.Tensor) -> bool:
    """Whether :func:`adamw_fused` runs the kernel for tensors like ``t`` (else the reference)."""
    return (
        triton is not None
        and kernel_switched_on(t.device, _INTERPRETED, "MQARKIT_FUSED_ADAMW")
        and t.dtype == torch.float32
    )


def adamw_fused(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    lrs: list[torch.Tensor],
    scalars: torch.Tensor,
    *,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> None:
    """:func:`adamw_reference`'s update, one kernel launch per parameter (reference where the kernel does not serve).

    Every list holds tensors of one shape per position; ``scalars (3,)`` float32 on the parameters' device.
    """
    lists = {"grads": grads, "ms": ms, "vs": vs, "lrs": lrs}
    for name, other in lists.items():
        if len(other) != len(params):
            raise ValueError(f"{name}: needs one tensor per parameter ({len(other)} != {len(params)})")
    if scalars.shape != (3,):
        raise ValueError(f"scalars: needs shape (3,) = (c1, c2, -factor), got {tuple(scalars.shape)}")
    kw = {"betas": betas, "eps": eps, "weight_decay": weight_decay}
    if not params or not fused_available(params[0]):
        adamw_reference(params, grads, ms, vs, lrs, scalars, **kw)
        return
    b1, b2 = betas
    for i, p in enumerate(params):
        group = (p, grads[i], ms[i], vs[i], lrs[i])
        if any(t.shape != p.shape or t.dtype != torch.float32 or not t.is_contiguous() for t in group):
            raise ValueError(f"params[{i}]: kernel needs contiguous float32 p, grad, m, v, lr of one shape")
        n = p.numel()
        # 1 − β as Python floats rounded once to float32, as the foreach ops' scalar arguments are
        args = (n, 1 - b1, b2, 1 - b2, eps, weight_decay)
        _adamw_kernel[(triton.cdiv(n, BLOCK),)](*group, scalars, *args, BLOCK=BLOCK)
