"""The (gated) delta rule through fla's chunked Triton kernels, in the stacked layout: ``chunk_delta_rule``
(DeltaNet) and ``chunk_gated_delta_rule`` (Gated DeltaNet).

They compute, per sequence and head (fla ``0.6``, ``fla.ops.delta_rule`` / ``fla.ops.gated_delta_rule``; their naive
forms ``delta_rule_recurrence`` / ``naive_recurrent_gated_delta_rule`` say the same one token at a time)::

    S ← e^{g_t} S;   S ← S + β_t k_t (v_t − Sᵀ k_t)ᵀ;   o_t = scale · Sᵀ q_t         (g = 0 for the delta rule)

How fla's kernels differ from our reference (bounded by the GPU tests):

- chunks of 64 in the WY form (a triangular inverse per chunk, fla's ``solve_tril``), the state across chunks; the
  products are ``tl.dot`` in the input dtype with float32 accumulation;
- **half precision only**: ``chunk_delta_rule`` refuses float32 inputs (an assertion: "does not support float32"),
  and the gated kernel shares its state kernels (``fla.ops.common.chunk_delta_h``), so both serve bf16/fp16 inputs
  (training under autocast) and the family's own float32 form runs otherwise (:func:`delta_rule_available`);
- we normalise ``q, k`` ourselves (``use_qk_l2norm_in_kernel=False``; fla's in-kernel norm is ours:
  ``x / √(Σx² + 1e-6)``) so that the per-run ``1/√K`` can be folded into ``q``: ``scale = 1``;
- ``β`` goes in the compute dtype (as fla's layers pass it), the log decays ``g`` in float32 (as fla's layer does);
- heads narrower than 16 are zero-padded (:mod:`.fla_heads`); wider than 256 are not served (fla asserts ``K ≤ 256``).

fla's entry points are ``torch.compiler.disable``-d (a graph break under ``torch.compile``); under compilation the call
here is an opaque custom op instead, ``mqarkit::fla_delta_rule`` (:func:`fla_delta_rule_op`), so that the family's step
compiles whole around it: its short convolutions, norms and gates fuse instead of running as eager elementwise passes
(uncompiled, DeltaNet's step spent over 80% of its GPU time there until the short convolutions, norms and scale became
fused kernels, :mod:`.short_conv`; about 40% is still eager elementwise work). The op's contract is plain: contiguous
inputs in, a contiguous output of ``v``'s shape in ``q``'s dtype out. Its backward,
``mqarkit::fla_delta_rule_backward``, runs fla's op again with autograd on and returns its gradients: one more forward
of fla's kernels per step, for a contract that does not depend on fla's internals (what fla saves between its forward
and backward). Compiling is a trial (``MQARKIT_COMPILE_DELTA_RULE=1``, the family's ``compilable``): on an H100 the
harness's stack failed with a stride assertion once a second sequence length ran (the likely cause, inductor padding the
fused projection's odd width, is what :func:`~mqarkit.gpu.frontier.ops.fused_projection` now avoids); since then the
compiled DeltaNet and Gated DeltaNet models equal the eager ones on an H100 at two lengths, but the compiled DeltaNet
stack of the speed table ran out of memory in its first evaluation, which recorded autograd at the test length 1024
(eleventh session; the delta rules now evaluate without it: ``evaluates_with_training_graph``). Eager steps call fla's
op directly. ``MQARKIT_FLA=0`` turns this path off.
"""

from __future__ import annotations

import contextlib
import os

import torch

from mqarkit.gpu.frontier.kernels.fla_common import HALF, fla_call, fla_enabled, fla_op, gated_backward
from mqarkit.gpu.frontier.kernels.fla_dqkwg import prepare_gated_backward
from mqarkit.gpu.frontier.kernels.fla_heads import (
    GroupsOnDevice,
    call_by_width_group,
    fold,
    fold_heads,
    head_widths_served,
    unfold,
)
from mqarkit.gpu.frontier.kernels.fla_wy import install_torch_backend as install_wy_backend

DELTA_RULE = ("fla.ops.delta_rule", "chunk_delta_rule")
COMPILE_SWITCH = "MQARKIT_COMPILE_DELTA_RULE"  # "1": the delta-rule families' steps compile around the op (trial)
# where fla refuses its gated backward, how the gated delta rule runs (gated_route): unset, "" or "1" (the default)
# fla's gated op with our forms of the refused kernel and of its gated WY backward; "0" the family's plain-torch
# form; "dplr" fla's DPLR recurrence (:func:`_dplr_forward`), a trial
GATED_SWITCH = "MQARKIT_FLA_GATED_DELTA_RULE"
GATED_CHOICES = ("1", "0", "dplr")
GATED_DELTA_RULE = ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule")
DPLR = ("fla.ops.generalized_delta_rule", "chunk_dplr_delta_rule")
GATED_ROUTES = {"gated": GATED_DELTA_RULE, "dplr": DPLR}  # gated_route()'s answers and the fla op each calls
DPLR_CHUNK = 16  # the chunk of fla's DPLR kernels without a decay bound (its default then)


def delta_rule_available(device: torch.device, dtype: torch.dtype, key_width: int, value_width: int, gated: bool):
    """Whether fla's (gated) delta rule serves: CUDA, fla importable, not switched off, half precision, widths, and
    (gated) a route through fla (:func:`gated_route`).

    Where fla refuses the gated part of its backward (Hopper, triton 3.4–3.7.1), our torch form of that part
    (:mod:`.fla_dqkwg`) serves Mamba-2's ``chunk_simple_gla`` but alone not the gated delta rule: with it alone,
    bf16 Gated DeltaNet's gradient failed its GPU test on an H100 (docs/results/frontier_protocol.md, ninth session:
    a scaled error of 0.40 from the float32 reference, against the naive form's 0.0096 in bf16), while Mamba-2's
    passed. The form equals fla's own kernel run by Triton's interpreter, with and without the delta rule's terms
    (``test_fla_dqkwg``). Not the cause: fla issue #984 (Triton miscompiling the delta rule's
    ``prepare_wy_repr_bwd_kernel`` on Hopper with 4 warps): restricted to 2 warps, the test failed with the same
    numbers (tenth session). The tensors that failed (eleventh session: the gradients reaching ``k``, ``β`` and the
    decay; those reaching ``q`` and ``v`` were right) are what fla's gated ``prepare_wy_repr_bwd`` computes through
    its ``∂A`` term, and that kernel equals our plain-torch form of it (:mod:`.fla_wy`) under Triton's interpreter.
    Replacing that kernel too by our form made bf16 Gated DeltaNet pass its GPU test on an H100 (twelfth session:
    the family's bf16 test, its graphed step and ``test_fla_wy``'s GPU test): so, where fla refuses, the gated delta
    rule runs fla's gated op with our forms of ``chunk_bwd_dqkwg`` and of the gated ``prepare_wy_repr_bwd`` by
    default (:func:`gated_route`; ``MQARKIT_FLA_GATED_DELTA_RULE=0`` takes the plain-torch form instead, ``=dplr``
    fla's DPLR op, :func:`_dplr_forward`, a trial whose GPU test has not finished compiling within a step yet).
    Under Triton's interpreter (no GPU code generation) all three routes through fla, fla's own kernels, ours in two
    of them and the DPLR op, compute the gated delta rule, values and gradients (``test_fla_routes_interpreted``)."""
    op = GATED_ROUTES.get(gated_route()) if gated else DELTA_RULE
    return (
        fla_enabled(device)
        and dtype in HALF
        and op is not None
        and fla_op(*op) is not None
        and head_widths_served(key_width, value_width)
    )


def compile_trial() -> bool:
    """Whether the delta-rule families' steps compile around :func:`fla_delta_rule_op`: a trial, switched on by
    ``MQARKIT_COMPILE_DELTA_RULE=1`` (the families' ``compilable``)."""
    return os.environ.get(COMPILE_SWITCH) == "1"


def gated_switch() -> str | None:
    """A departure from the gated delta rule's default route named by ``MQARKIT_FLA_GATED_DELTA_RULE``: ``"0"`` (the
    plain-torch form where fla refuses its gated backward) or ``"dplr"`` (the DPLR trial), or None (unset, empty or
    ``1``: the default); any other value is a ``ValueError`` naming the variable and its values."""
    value = os.environ.get(GATED_SWITCH, "")
    if value not in ("",) + GATED_CHOICES:
        raise ValueError(f"{GATED_SWITCH}={value!r}: needs one of {', '.join(GATED_CHOICES)} or unset")
    return None if value in ("", "1") else value


def gated_route() -> str | None:
    """How the gated delta rule runs through fla here: ``"gated"`` (fla's ``chunk_gated_delta_rule``: where fla
    computes its whole backward itself, or, where it refuses, with our forms of the kernel it refuses and of its
    gated WY backward), ``"dplr"`` (the trial ``MQARKIT_FLA_GATED_DELTA_RULE=dplr`` where fla refuses:
    :func:`_dplr_forward`), or None (not through fla: the family's plain-torch form, where fla refuses and our forms
    are switched off, by ``MQARKIT_FLA_GATED_DELTA_RULE=0`` or ``MQARKIT_FLA_TORCH_BACKWARD=0``)."""
    who, switch = gated_backward(), gated_switch()
    if who == "fla":
        return "gated"
    if switch == "dplr":
        return "dplr"
    return "gated" if who == "torch" and switch is None else None


def _fla_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, log_decay: torch.Tensor | None
) -> torch.Tensor:
    """fla's op on folded inputs: ``q, k (R·B, N, H, K)``, ``v (R·B, N, H, V)``, ``beta (R·B, N, H)``, ``log_decay``
    ``(R·B, N, H)`` float32 or None -> ``o (R·B, N, H, V)``, differentiable where the inputs require grad."""
    if log_decay is None:
        o, _ = fla_call(*DELTA_RULE)(q, k, v, beta, scale=1.0, use_qk_l2norm_in_kernel=False)
    elif gated_route() == "dplr":
        o = _dplr_forward(q, k, v, beta, log_decay)
    else:
        if gated_backward() == "torch":  # where fla refuses (gated_route): our forms of two of its kernels
            prepare_gated_backward()
            install_wy_backend()
        o, _ = fla_call(*GATED_DELTA_RULE)(q, k, v, log_decay, beta, scale=1.0, use_qk_l2norm_in_kernel=False)
    return o


def _dplr_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, log_decay: torch.Tensor
) -> torch.Tensor:
    """The gated delta rule as fla's diagonal-plus-low-rank recurrence (``chunk_dplr_delta_rule``, the op of RWKV-7's
    path, which fla does not refuse on Hopper), on folded inputs as :func:`_fla_forward`'s::

        S_t = diag(e^{gk_t}) S_{t−1} + b_t (a_tᵀ S_{t−1}) + k'_t v_tᵀ,   o_t = S_tᵀ q_t        (fla's DPLR, scale 1)
        gk_t = g_t on every key channel,   a_t = k_t,   b_t = −β_t e^{g_t} k_t,   k'_t = β_t k_t

    which is ``S_t = e^{g_t} S_{t−1} + β_t k_t (v_t − e^{g_t} S_{t−1}ᵀ k_t)ᵀ`` (:mod:`..families.recurrences`
    writes Gated DeltaNet the same way). fla's default DPLR kernels (no ``safe_gate``, chunks of 16) exponentiate,
    as fla 0.6's sources read, only differences of decays cumulated within a chunk that are ≤ 0, so they need no
    bound on the decay (``safe_gate`` needs one: RWKV-7's path passes it); under Triton's interpreter the route
    computes the rule with decays down to e^{−4} a step (``test_fla_routes_interpreted``; not yet on a GPU); it
    holds the states entering each chunk, ``N/16 · H · K · V`` numbers a sequence. ``β e^{g}`` is formed in float32
    at least, the products in ``q``'s (half) dtype."""
    dtype, acc = q.dtype, torch.promote_types(log_decay.dtype, torch.float32)
    g = log_decay.to(acc)
    shrink = -(beta.to(acc) * torch.exp(g))[..., None] * k.to(acc)  # b_t, (R·B, N, H, K)
    key = beta[..., None].to(dtype) * k  # k'_t
    gk = g[..., None].expand(k.shape).contiguous()  # float32 at least: the head's decay on every key channel
    o, _ = fla_call(*DPLR)(q, key, v, k, shrink.to(dtype), gk, scale=1.0, chunk_size=DPLR_CHUNK)
    return o


@torch.library.custom_op("mqarkit::fla_delta_rule", mutates_args=())
def fla_delta_rule_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, log_decay: torch.Tensor | None
) -> torch.Tensor:
    """:func:`_fla_forward` as one opaque op (no graph break under ``torch.compile``): the output contiguous."""
    with torch.no_grad():
        return _fla_forward(q, k, v, beta, log_decay).contiguous()


@fla_delta_rule_op.register_fake
def _(q, k, v, beta, log_decay):
    return v.new_empty(v.shape, dtype=q.dtype)


@contextlib.contextmanager
def autograd_inside_an_op():
    """Autograd on inside a custom op's implementation. The dispatcher runs an op's kernel below its autograd keys
    (excluded for the kernel's duration, so that nothing inside records a graph); fla's backward is an autograd
    function, so it is let in again here, and grad mode turned on. (torch's private dispatch-key guard: no public
    form exists; the CPU test of this op checks it on the installed torch.)"""
    keys = torch._C.DispatchKey
    excluded = torch._C._dispatch_tls_local_exclude_set()
    excluded = excluded.remove(keys.AutogradFunctionality).remove(keys.AutogradOther)
    with torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), excluded), torch.enable_grad():
        yield


@torch.library.custom_op("mqarkit::fla_delta_rule_backward", mutates_args=())
def fla_delta_rule_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None,
    do: torch.Tensor,
) -> list[torch.Tensor]:
    """The gradients of :func:`fla_delta_rule_op` for ``do`` (its output's): fla's op run again with autograd on and
    differentiated by fla's backward -> ``[dq, dk, dv, dβ]`` (``+ [dg]`` when gated), contiguous, the inputs' dtypes."""
    leaves = [t.detach().requires_grad_() for t in (q, k, v, beta, log_decay) if t is not None]
    with autograd_inside_an_op():
        o = _fla_forward(*leaves[:4], leaves[4] if log_decay is not None else None)
        grads = torch.autograd.grad(o, leaves, do)
    return [g.to(t.dtype).contiguous() for g, t in zip(grads, leaves, strict=True)]


@fla_delta_rule_backward.register_fake
def _(q, k, v, beta, log_decay, do):
    return [torch.empty_like(t) for t in (q, k, v, beta, log_decay) if t is not None]


def _setup_backward(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, do: torch.Tensor):
    q, k, v, beta, log_decay = ctx.saved_tensors
    grads = fla_delta_rule_backward(q, k, v, beta, log_decay, do.contiguous())
    return *grads[:4], (grads[4] if log_decay is not None else None)


fla_delta_rule_op.register_autograd(_backward, setup_context=_setup_backward)


def fla_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None,
    groups: GroupsOnDevice | None = None,
) -> torch.Tensor:
    """``q, k (R, B, N, H, K)`` (normalised, ``q`` scaled), ``v (R, B, N, H, V)``, ``beta (R, B, N, H)``, ``log_decay``
    ``(R, B, N, H)`` or None (DeltaNet) -> ``o (R, B, N, H, V)`` in ``q``'s (half) dtype: one fla call for the stack,
    or, given ``groups`` (the stack's :class:`~.fla_heads.WidthGroups`, its order and inverse order as device
    tensors), one call per group of runs at their own widths (:func:`~.fla_heads.call_by_width_group`)."""
    return call_by_width_group(_one_call, groups, (q, k, v), (beta, log_decay))


def _one_call(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, log_decay: torch.Tensor | None
) -> torch.Tensor:
    """:func:`fla_delta_rule` for runs of one width: the runs folded into fla's batch axis."""
    dtype = q.dtype
    g = None if log_decay is None else fold_heads(log_decay, torch.float32)
    call = fla_delta_rule_op if torch.compiler.is_compiling() else _fla_forward  # eager: fla's autograd, no rerun
    o = call(fold(q), fold(k, dtype), fold(v, dtype), fold_heads(beta, dtype), g)
    return unfold(o, q.shape[0], v.shape[-1])
