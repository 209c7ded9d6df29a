"""Mamba (Mamba-1): the selective SSM of Gu & Dao, as the reference's ``zoology.mixers.mamba.Mamba`` (state-spaces'
``mamba_simple.Mamba``) with its defaults (expansion 2, a causal conv of 4 taps, ``dt_rank = ⌈d/16⌉``).

Glossary (per run; ``u (B, N, d)`` is layer 1's input)::

    n      d_state (knob): the state of each inner channel
    d_i    = 2d, the inner width;  r = ⌈d/16⌉, the rank of Δ's projection
    x, z   = u W_in                                     (d × 2d_i, no bias)
    x      = SiLU(conv_4(x) + b_conv)                   (causal depthwise, 4 taps, per inner channel)
    Δ_t    = softplus((x_t W_x^Δ) W_Δ + b_Δ)            (d_i → r → d_i: one step size per channel)
    B_t, C_t = x_t W_x^B, x_t W_x^C                     (d_i × n each: input-dependent, shared by the channels)
    A      = −exp(A_log)                                (d_i × n: one decay rate per channel and state)
    h_t    = exp(Δ_t ⊙ A) ⊙ h_{t−1} + (Δ_t ⊙ x_t) B_tᵀ  (d_i × n)
    y_t    = h_t C_t + D ⊙ x_t
    out    = (y ⊙ SiLU(z)) W_o

Recurrent mode carries ``h`` (``d_i × n``) and the conv's last 3 inputs: ``d_i·n + 3·d_i`` numbers whatever ``N``.
Runs of one stack may have different ``n``: ``W_x^B, W_x^C, A_log`` are padded along the state and masked (padded
states stay 0).

Fast path (stacked): on CUDA, the fused Triton scan of :mod:`mqarkit.gpu.frontier.kernels.selective_scan`, which
keeps each state column in registers and never forms the states (:func:`scan_outputs` dispatches; its reference is
the torch scan below, and ``MQARKIT_FUSED_SCAN=0`` turns it off). Elsewhere, plain torch: :func:`selective_scan`, a
two-level chunked scan in float32 at least. Every ``(d_i, n)`` state is formed once (memory ``O(N·d_i·n)`` per
example, linear in ``N``), by ``T`` elementwise steps inside all chunks at once and one step per chunk across them
(``T`` the smallest power of two with ``T² ≥ N``, so about ``2√N`` steps in all), every decay an ``exp`` of a
non-positive sum. Both in float32 at least, everything but ``W_o`` with autocast off. The reference is
``selective_scan_ref``'s recurrence, one position after another.

How it differs from the reference implementation: the same function; the reference runs its CUDA kernels
(``causal_conv1d``, ``selective_scan``, fused in ``mamba_inner_fn``), ours the scans above, and under bf16
autocast the reference rounds ``W_in``'s and ``W_x``'s outputs to bf16 before its float32 scan, ours does not.
Zoology's Mamba models are two Mamba blocks with RMSNorm (``block_type = "MambaBlock"``): our ``block_type = "mamba"``,
which the model builds under ``layers = "mixer"`` (:mod:`mqarkit.gpu.frontier.model`); under ``layers = "hybrid"``
Mamba is layer 1 of the [B] Fig. 2 hybrid in a ``TransformerBlock``, like every family. Initialisation as the
reference's inside Zoology's model (which zeroes only the biases of a Mamba model's ``nn.Linear``s): ``W_in``,
``W_x`` as ``nn.Linear`` (``U(±1/√fan_in)``), ``W_o`` the same divided by ``√2`` (two layers; the same in both blocks
under ``layers = "mixer"``, as the reference's ``n_layers = 2``), the conv and its bias as ``Conv1d``
(``U(±1/2)``), ``W_Δ ~ U(±r^{−1/2})``, ``b_Δ = softplus⁻¹(Δ₀)`` with ``Δ₀`` log-uniform in ``[1e-3, 1e-1]`` (floored
at ``1e-4``), ``A_log = log(1..n)`` (S4D-Real), ``D = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.kernels import sequential_scan
from mqarkit.gpu.frontier.kernels.selective_scan import block_sizes, fused_scan_available, fused_selective_scan
from mqarkit.gpu.frontier.ops import causal_depthwise_conv, gather_rows, init_conv, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer

EXPAND = 2  # d_i = EXPAND · d
CONV = 4  # taps of the causal depthwise conv on x
DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4  # Δ starts log-uniform in [DT_MIN, DT_MAX], at least DT_FLOOR
LAYERS = 2  # the reference divides W_o by √(layers) (GPT-2's residual scaling; [B] Fig. 2 models have 2 layers)


def dt_rank(d_model: int) -> int:
    """``r = ⌈d/16⌉``: the rank of Δ's projection."""
    return math.ceil(d_model / 16)


def chunk_length(n: int) -> int:
    """``T``: the smallest power of two with ``T² ≥ n`` (``n = 1024`` gives 32 steps in each level of the scan)."""
    t = 1
    while t * t < n:
        t *= 2
    return t


# Never compiled: its loops (T steps, then one per chunk, T and the chunk count following N) unroll into a graph per
# sequence length (a stack of two runs on a 2-core CPU: 41 s to compile at N = 64, then 48 s more at 128 and 56 s more
# at 256; left out, 16 s, then 5 s and 2 s); under ``torch.compile`` a call is a graph break, run eagerly, the
# projections around it compiled.
@torch.compiler.disable
def selective_scan(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``y_t = h_t C_t`` with ``h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_tᵀ``, ``h_{−1} = 0``, by chunks.

    ``x, dt (R, B, N, d_i)``, ``a (R, d_i, n)``, ``b, c (R, B, N, n)`` (one dtype) -> ``y (R, B, N, d_i)`` and the
    last state ``h_{N−1} (R, B, d_i, n)``. With chunks of ``T`` positions (``N`` padded with ``Δ = 0``, which keeps
    the state): inside each chunk the state from zero, ``T`` steps for all chunks at once; across chunks the state
    entering each, one step per chunk; then ``h_t = local_t + exp(A Σ_{chunk start ≤ ρ ≤ t} Δ_ρ) ⊙ entering``.
    """
    r, bsz, n, di = x.shape
    t = chunk or chunk_length(n)
    chunks = -(-n // t)
    pad = chunks * t - n
    x, dt, b, c = (F.pad(v, (0, 0, 0, pad)).unflatten(2, (chunks, t)) for v in (x, dt, b, c))  # (R, B, C, T, ·)
    log_decay = dt[..., None] * a[:, None, None, None]  # (R, B, C, T, d_i, n), ≤ 0
    inputs = (dt * x)[..., None] * b[..., None, :]  # (R, B, C, T, d_i, n)
    decay = torch.exp(log_decay)
    h = torch.zeros_like(inputs[:, :, :, 0])
    local = []
    for i in range(t):  # inside every chunk at once, from a zero state
        h = decay[:, :, :, i] * h + inputs[:, :, :, i]
        local.append(h)
    from_start = torch.exp(torch.cumsum(log_decay, dim=3))  # decay from the chunk's start through position t
    carry, entering = torch.zeros_like(h[:, :, 0]), []
    for j in range(chunks):  # across chunks: the state entering chunk j
        entering.append(carry)
        carry = from_start[:, :, j, -1] * carry + local[-1][:, :, j]
    states = torch.stack(local, dim=3) + from_start * torch.stack(entering, dim=2)[:, :, :, None]
    y = torch.einsum("rbctin,rbctn->rbcti", states, c).flatten(2, 3)[:, :, :n]
    return y, carry


def _sequential(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the scan takes the sequential trial kernels: asked for (``$MQARKIT_SCAN``) and serving these inputs."""
    return sequential_scan.sequential_chosen() and sequential_scan.sequential_scan_available(device, dtype)


@torch.compiler.disable  # the kernels' launch and the torch scan's loops stay out of the compiled graph
def scan_outputs(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, states: torch.Tensor
) -> torch.Tensor:
    """The scan's ``y (R, B, N, d_i)``: the fused Triton kernels where they serve (float32 on CUDA, ``N ≤ MAX_LEN``:
    :func:`fused_scan_available`; they never form the states, and skip each run's padded state indices beyond its
    ``states (R,)``), else :func:`selective_scan`. With ``MQARKIT_SCAN=sequential``, the trial kernels of
    ``kernels/sequential_scan.py`` where they serve."""
    if _sequential(x.device, x.dtype):
        return sequential_scan.sequential_selective_scan(x, dt, a, b, c, states)
    if fused_scan_available(x.device, x.dtype, x.shape[2]):
        return fused_selective_scan(x, dt, a, b, c, states)
    return selective_scan(x, dt, a, b, c)[0]


class Mamba(StackedMixer):
    name = "mamba"
    block_type = "mamba"  # the reference's MambaBlock (RMSNorm -> Mamba -> residual) under layers = "mixer"
    knobs = (Knob("d_state", "n", help="n, the state of each inner channel"),)
    # With autograd recording, the harness's evaluation ran out of memory on an H100 in based-fig2's d = 256 stack
    # (12 runs; twelfth session, docs/results/frontier_protocol.md): at the test length 1024 a micro-batch held the
    # activations a backward would need (the scan's float32 (N, d_i) inputs and outputs in both blocks, d_i = 2d), on
    # top of the 44.6 GiB the training step's CUDA graphs keep in their pool. Mamba evaluates without autograd,
    # compiling an inference variant once per stack.
    evaluates_with_training_graph = False

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, n, r = d_model, int(knobs["d_state"]), dt_rank(d_model)
        di = EXPAND * d

        def uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
            return (torch.rand(shape, generator=generator) * 2 - 1) * bound

        p = {"in_w": uniform((d, 2 * di), 1 / math.sqrt(d))}
        p |= {"conv_w": init_conv((di, CONV), generator), "conv_b": uniform((di,), 1 / math.sqrt(CONV))}
        x_proj = uniform((di, r + 2 * n), 1 / math.sqrt(di))  # one nn.Linear in the reference, split here
        p |= {"xdt_w": x_proj[:, :r], "xb_w": x_proj[:, r : r + n], "xc_w": x_proj[:, r + n :]}
        p["dt_w"] = uniform((r, di), r**-0.5)
        span = math.log(DT_MAX) - math.log(DT_MIN)
        dt = torch.exp(torch.rand(di, generator=generator) * span + math.log(DT_MIN)).clamp(min=DT_FLOOR)
        p["dt_b"] = dt + torch.log(-torch.expm1(-dt))  # softplus⁻¹(Δ₀)
        p["a_log"] = torch.log(torch.arange(1, n + 1, dtype=torch.float32)).expand(di, n).clone()
        p["skip"] = torch.ones(di)
        p["out_w"] = uniform((di, d), 1 / math.sqrt(di)) / math.sqrt(LAYERS)
        return p

    def intermediate_elements(self, seq_len: int) -> int:
        """The torch scan's ``(N, d_i, n)`` states; the fused kernels' largest, the per-block shares of ``∂B, ∂C``
        or a ``(N, d_i)`` tensor; the sequential trial kernels' backward buffers (a chunk's states and the
        checkpoints) with their shares of ``∂x, ∂Δ`` (per state block) and ``∂B, ∂C`` (per channel block)."""
        di, n = EXPAND * self.d, self.xb_w.shape[-1]
        acc = torch.promote_types(self.in_w.dtype, torch.float32)  # the scan's dtype (gated_scan's acc)
        if _sequential(self.in_w.device, acc):  # the backward's buffers and its shares of ∂x, ∂Δ, ∂B, ∂C
            block_d, block_s = sequential_scan.block_shape(n, sequential_scan.default_launch(di).tile)
            d_blocks, s_blocks = -(-di // block_d), -(-n // block_s)
            chunk = sequential_scan.chunk_length(seq_len)
            buffers = d_blocks * block_d * s_blocks * block_s * (chunk + -(-seq_len // chunk))
            return self.runs * (buffers + 2 * s_blocks * seq_len * di + 2 * d_blocks * seq_len * n)
        if fused_scan_available(self.in_w.device, acc, seq_len):
            blocks = -(-di // block_sizes(seq_len)[1])
            return self.runs * seq_len * max(di, blocks * n)
        return self.runs * seq_len * di * n

    # ---------------------------------------------------------------- fast path (stacked)
    def gated_scan(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y`` (before the gate) and ``z``, ``(R, B, N, d_i)`` each, in float32 at least with autocast off: the
        states span a wide range (``Δ`` up to tens, ``exp(ΔA)`` down to 0), and ``x`` rounded to bf16 before the
        scan moves gradients by a few percent; ``W_in`` and the ``d_i → r + 2n`` projection cost little next to the
        ``(N, d_i, n)`` scan. Only ``W_o`` runs in the autocast dtype."""
        acc = torch.promote_types(u.dtype, torch.float32)  # float32 under autocast; float64 stays float64
        n = self.xb_w.shape[-1]
        w = torch.cat([self.xdt_w, self.masked("xb_w"), self.masked("xc_w")], dim=-1).to(acc)
        with torch.autocast(u.device.type, enabled=False):
            x, z = linear(u.to(acc), self.in_w.to(acc)).chunk(2, dim=-1)
            x = F.silu(causal_depthwise_conv(x, self.conv_w.to(acc), self.conv_b.to(acc)))
            low, b, c = linear(x, w).split([self.xdt_w.shape[-1], n, n], dim=-1)
            dt = F.softplus(linear(low, self.dt_w.to(acc)) + self.dt_b.to(acc)[:, None, None])
            y = scan_outputs(x, dt, -torch.exp(self.masked("a_log").to(acc)), b, c, self.knob_tensor("d_state"))
        return y + x * self.skip.to(acc)[:, None, None], z

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        y, z = self.gated_scan(u)
        return linear(y.to(u.dtype) * F.silu(z), self.out_w)

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The scan over every position; the gate and ``W_o`` at the query rows only."""
        y, z = self.gated_scan(u)
        return linear(gather_rows(y, qpos).to(u.dtype) * F.silu(gather_rows(z, qpos)), self.out_w)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def inputs(self, run: int, u: torch.Tensor):
        """Run ``run``'s ``x`` (after conv and SiLU), ``z``, ``Δ`` ``(B, N, d_i)``, ``B, C`` ``(B, N, n)`` and ``A``."""
        p = self.run_parameters(run)
        n = u.shape[1]
        x, z = (u @ p["in_w"]).chunk(2, dim=-1)
        x = F.silu(sum(F.pad(x, (0, 0, s, 0))[:, :n] * p["conv_w"][:, s] for s in range(CONV)) + p["conv_b"])
        dt = F.softplus(x @ p["xdt_w"] @ p["dt_w"] + p["dt_b"])
        return x, z, dt, x @ p["xb_w"], x @ p["xc_w"], -torch.exp(p["a_log"])

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """``selective_scan_ref``'s recurrence, one position after another."""
        p = self.run_parameters(run)
        x, z, dt, b, c, a = self.inputs(run, u)
        h = torch.zeros(u.shape[0], *a.shape, dtype=u.dtype, device=u.device)  # (B, d_i, n)
        ys = []
        for t in range(u.shape[1]):
            h = torch.exp(dt[:, t, :, None] * a) * h + (dt[:, t] * x[:, t])[..., None] * b[:, t, None, :]
            ys.append((h * c[:, t, None, :]).sum(-1))
        y = torch.stack(ys, dim=1) + x * p["skip"]
        return (y * F.silu(z)) @ p["out_w"]

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        x, z = (u_t @ p["in_w"]).chunk(2, dim=-1)  # (B, d_i)
        if state is None:
            cache = torch.zeros(u_t.shape[0], CONV - 1, x.shape[-1], dtype=u_t.dtype, device=u_t.device)
        else:
            cache = state["conv_cache"]
        window = torch.cat([cache, x[:, None]], dim=1)  # (B, CONV, d_i): oldest first, x_t last
        x = F.silu((window * p["conv_w"].T.flip(0)).sum(1) + p["conv_b"])  # tap s reads x_{t−s}
        dt = F.softplus(x @ p["xdt_w"] @ p["dt_w"] + p["dt_b"])
        a = -torch.exp(p["a_log"])
        h = 0 if state is None else state["ssm"]
        h = torch.exp(dt[..., None] * a) * h + (dt * x)[..., None] * (x @ p["xb_w"])[:, None, :]  # (B, d_i, n)
        y = (h * (x @ p["xc_w"])[:, None, :]).sum(-1) + p["skip"] * x
        return (y * F.silu(z)) @ p["out_w"], {"ssm": h, "conv_cache": window[:, 1:]}

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """``h_N`` (by :func:`selective_scan`) and the conv's last 3 inputs after ``u (N, d)``, in one pass (tests
        compare with :meth:`step`)."""
        p = self.run_parameters(run)
        x, _, dt, b, c, a = self.inputs(run, u[None])
        _, h = selective_scan(x[None], dt[None], a[None], b[None], c[None])
        x_in = (u @ p["in_w"]).chunk(2, dim=-1)[0]
        return {"ssm": h[0, 0], "conv_cache": F.pad(x_in, (0, 0, CONV - 1, 0))[u.shape[0] :]}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        di = EXPAND * d_model
        return di * int(knobs["d_state"]) + (CONV - 1) * di
