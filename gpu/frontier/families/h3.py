"""H3: a shift SSM on the keys, a diagonal SSM on the key-value products, a gate by the query, as the reference's
``zoology.mixers.h3.H3`` (the model of [Z] Fig. 2 and [B] Fig. 2, ``head_dim = 2``).

Glossary (per run; ``u (B, N, d)`` is layer 1's input)::

    n     d_state (knob, even): taps of the shift SSM; the diagonal SSM has m = n/2 complex modes per head
    p     head_dim (knob, divides d); H = d/p heads, channel c = h·p + i belongs to head h
    L     max_len: the longest filter the model ever applies
    q, k, v = u W_q + b_q, u W_k + b_k, u W_v + b_v                  (d × d each)
    shift SSM (per channel, A = shift, trained B and C):
        s_l = Σ_j B_j C_{j+l}                 (l < n: an n-tap filter; taps at lags ≥ L never meet an input)
        k̃_t = Σ_{l≤t} s_l k_{t−l} + D_k ⊙ k_t
    diagonal SSM (per head h and mode μ, bilinear discretisation of A = −exp(a_re) + i·a_im with step Δ = exp(log_dt)):
        Ā = (1 + ΔA/2)/(1 − ΔA/2)             B̄ = Δ B/(1 − ΔA/2)
        K_l = 2 Re Σ_μ C_μ B̄_μ Ā_μ^l          (B, C complex, stored as (re, im) pairs)
    per head, the p × p key-value products and their SSM:
        (kv)_t[i, j] = k̃_t[h p + i] v_t[h p + j]
        Y_t[i, j]    = Σ_{l≤t} K_l (kv)_{t−l}[i, j] + D_h (kv)_t[i, j]
        o_t[h p + j] = Σ_i q_t[h p + i] Y_t[i, j]
    out = o W_o + b_o

Recurrent mode carries the shift SSM's register, the last ``min(n, L) − 1`` keys of every channel, and the diagonal
SSM's state ``S_t = Ā S_{t−1} + B̄ (kv)_t`` (per head a ``p × p × m`` complex array, counted as its real and imaginary
parts), with ``Y_t = 2 Re(C S_t) + D_h (kv)_t``: ``d·(min(n, L) − 1) + p·d·n`` numbers whatever ``N``.

Fast path (stacked): both long convolutions by ``ops.causal_long_conv`` (a Toeplitz matmul up to 256 positions, FFT
beyond), the kernels in real arithmetic (``Ā^l`` as ``exp(l ρ)·(cos lθ, sin lθ)``); the key-value products of all runs
in one layout of ``P × P`` blocks, ``P`` the least common multiple of the stack's head dims, with a 0/1 mask keeping
each run's products inside its own heads (runs of one stack may have different ``p`` and ``n``: ``log_dt, a_re, a_im, B,
C, D_h`` are padded along heads and modes, the shift SSM's ``B, C`` along taps, and masked); everything but ``W_o`` in
float32 at least with autocast off. The reference computes the kernels in complex arithmetic and both convolutions lag
by lag.

How it differs from the reference implementation: the same function, with two conventions. (1) The reference lays
the output channels out as ``j·H + h`` before ``W_o``; ours are head-major, ``h·p + j`` (the golden map,
:mod:`mqarkit.gpu.frontier.families.golden_map`, permutes ``W_o``'s rows accordingly). (2) The reference computes the
shift kernel and one product ``B·C`` in single precision even in a float64 module; ours follow the input's precision
(float32 at least). Its FFT path (``use_fast_fftconv = False``, as in the papers' runs) is what ours computes; the
``head_dim = 1`` branch of the reference is the same formula. Initialisation as the reference's inside Zoology's
model: projections ``N(0, 0.02²)`` with zero biases (Zoology re-initialises every ``nn.Linear``), the shift SSM's
``B = e_0`` and ``C ~ U(±1/√n)``, S4D-Lin for the diagonal SSM (``a_re = log ½``, ``a_im = π μ``, ``B = 1``,
``C ~ CN(0, 1)``, ``log Δ ~ U[log 1e-3, log 1e-1]``), ``D_k, D_h ~ N(0, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.ops import causal_long_conv, gather_rows, init_normal, linear
from mqarkit.gpu.frontier.protocol import Knob, KnobValue, StackedMixer

DT_MIN, DT_MAX = 1e-3, 1e-1  # the diagonal SSM's step Δ starts log-uniform in [DT_MIN, DT_MAX]


# ---------------------------------------------------------------- the two kernels (shared by every form)
def shift_kernel(b: torch.Tensor, c: torch.Tensor, taps: int) -> torch.Tensor:
    """``s_l = Σ_j b_j c_{j+l}`` for ``l < taps`` (zero beyond ``n``) by FFT; ``b, c (..., n)`` -> ``(..., taps)``."""
    n = b.shape[-1]
    s = torch.fft.irfft(torch.fft.rfft(b, n=2 * n).conj() * torch.fft.rfft(c, n=2 * n), n=2 * n)[..., :n]
    return F.pad(s, (0, taps - n)) if taps > n else s[..., :taps]


def diagonal_kernel(
    log_dt: torch.Tensor, a_re: torch.Tensor, a_im: torch.Tensor, b: torch.Tensor, c: torch.Tensor, length: int
) -> torch.Tensor:
    """``K_l = 2 Re Σ_μ C_μ B̄_μ Ā_μ^l`` for ``l < length``, in real arithmetic.

    ``log_dt (..., H)``, ``a_re, a_im (..., H, m)``, ``b, c (..., H, m, 2)`` (re, im) -> ``(..., H, length)``. With
    ``ΔA = α + iβ`` (``α < 0``): ``log Ā = log(1 + ΔA/2) − log(1 − ΔA/2) = ρ + iθ`` and
    ``C B̄ = C B Δ / (1 − ΔA/2) = w``, so ``K_l = 2 Σ_μ e^{lρ} (w_re cos lθ − w_im sin lθ)``.
    """
    dt = torch.exp(log_dt)[..., None]  # (..., H, 1)
    alpha, beta = -torch.exp(a_re) * dt, a_im * dt
    num_re, num_im = 1 + alpha / 2, beta / 2  # 1 + ΔA/2
    den_re, den_im = 1 - alpha / 2, -beta / 2  # 1 − ΔA/2 (its real part is > 1)
    rho = 0.5 * (torch.log(num_re**2 + num_im**2) - torch.log(den_re**2 + den_im**2))
    theta = torch.atan2(num_im, num_re) - torch.atan2(den_im, den_re)
    bc_re = b[..., 0] * c[..., 0] - b[..., 1] * c[..., 1]
    bc_im = b[..., 0] * c[..., 1] + b[..., 1] * c[..., 0]
    scale = dt / (den_re**2 + den_im**2)  # w = bc · conj(den) · Δ / |den|²
    w_re = (bc_re * den_re + bc_im * den_im) * scale
    w_im = (bc_im * den_re - bc_re * den_im) * scale
    lags = torch.arange(length, device=log_dt.device, dtype=log_dt.dtype)
    mag, angle = torch.exp(rho[..., None] * lags), theta[..., None] * lags  # (..., H, m, length)
    return 2 * (mag * (w_re[..., None] * torch.cos(angle) - w_im[..., None] * torch.sin(angle))).sum(-2)


def discretised(p: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One run's diagonal SSM in complex form: ``Ā, B̄, C``, each ``(H, m)`` (the reference and recurrent mode)."""
    dt = torch.exp(p["log_dt"])[:, None]
    dta = dt * torch.complex(-torch.exp(p["a_re"]), p["a_im"])
    a_bar = (1 + dta / 2) / (1 - dta / 2)
    b_bar = torch.view_as_complex(p["ssm_b"].contiguous()) * dt / (1 - dta / 2)
    return a_bar, b_bar, torch.view_as_complex(p["ssm_c"].contiguous())


class H3(StackedMixer):
    name = "h3"
    knobs = (
        Knob("d_state", "n", help="n, the shift SSM's taps; the diagonal SSM has n/2 complex modes per head"),
        Knob("head_dim", "hd", help="p, the channels of one head (the key-value product is p × p per head)"),
    )

    @classmethod
    def check(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue]) -> None:
        if int(knobs["d_state"]) % 2:
            raise ValueError(f"d_state={knobs['d_state']}: h3 needs an even d_state (n/2 complex modes per head)")
        if d_model % int(knobs["head_dim"]):
            raise ValueError(f"head_dim={knobs['head_dim']}: h3 needs head_dim dividing d_model={d_model}")

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        d, n, p = d_model, int(knobs["d_state"]), int(knobs["head_dim"])
        heads, modes = d // p, n // 2
        out = {}
        for name in ("q", "k", "v"):
            out |= {f"{name}_w": init_normal((d, d), generator), f"{name}_b": torch.zeros(d)}
        out["shift_b"] = F.one_hot(torch.zeros(d, dtype=torch.int64), n).float()  # B = e_0: a pure shift register
        out["shift_c"] = (torch.rand((d, n), generator=generator) * 2 - 1) / math.sqrt(n)  # Conv1d-like
        out["shift_skip"] = torch.randn(d, generator=generator)
        span = math.log(DT_MAX) - math.log(DT_MIN)
        out["log_dt"] = torch.rand(heads, generator=generator) * span + math.log(DT_MIN)
        out["a_re"] = torch.full((heads, modes), math.log(0.5))  # S4D-Lin: A = −½ + iπμ
        out["a_im"] = math.pi * torch.arange(modes, dtype=torch.float32).expand(heads, modes).clone()
        out["ssm_b"] = torch.stack([torch.ones(heads, modes), torch.zeros(heads, modes)], dim=-1)
        out["ssm_c"] = torch.randn((heads, modes, 2), generator=generator) / math.sqrt(2)  # CN(0, 1)
        out["ssm_skip"] = torch.randn(heads, generator=generator)
        out |= {"o_w": init_normal((d, d), generator), "o_b": torch.zeros(d)}
        return out

    def __init__(
        self,
        d_model: int,
        max_len: int,
        knobs: list[dict[str, KnobValue]],
        generators: list[torch.Generator],
        *,
        layer: int = 1,
    ):
        """The protocol's constructor, then the block layout of the stack's key-value products: ``P`` (the least
        common multiple of the head dims, which divides ``d``), per run the ``(P, P)`` mask of same-head pairs and
        the head of each row of each block, ``(G, P)`` with ``G = d/P``."""
        super().__init__(d_model, max_len, knobs, generators, layer=layer)
        dims = [int(k["head_dim"]) for k in self.run_knobs]
        self.block = math.lcm(*dims)  # P: every run's heads tile a block of P channels
        i = torch.arange(self.block)
        same = torch.stack([(i[:, None] // p == i[None, :] // p).float() for p in dims])  # (R, P, P)
        channels = torch.arange(d_model).view(-1, self.block)  # (G, P): channel g·P + i
        self.register_buffer("same_head", same)
        self.register_buffer("head_of", torch.stack([channels // p for p in dims]))  # (R, G, P)

    def intermediate_elements(self, seq_len: int) -> int:
        # the FFT's spectrum of the (d·P)-channel products; up to TOEPLITZ_MAX_LEN positions the Toeplitz matmul's
        # output, half of it per example (its (N, N) matrices do not grow with the batch)
        return self.runs * 2 * (seq_len + 1) * self.d * self.block

    # ---------------------------------------------------------------- fast path (stacked)
    def kernels(self, n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The shift kernel ``(R, d, n)`` and the diagonal SSM's kernel ``(R, H, n)`` of every run, in ``dtype``."""
        s = shift_kernel(self.masked("shift_b").to(dtype), self.masked("shift_c").to(dtype), n)
        names = ("log_dt", "a_re", "a_im", "ssm_b", "ssm_c")
        return s, diagonal_kernel(*(self.masked(x).to(dtype) for x in names), n)

    def products(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q (R, B, N, G, P)`` and ``Y (R, B, N, G, P, P)`` (the diagonal SSM's output on the products, zero across
        heads), in float32 at least with autocast off: the output is a product of three projections, each of which
        bf16 would round (about 1% on gradients), and ``W_q, W_k, W_v`` cost little next to the FFTs over ``d·P``
        channels. Only ``W_o`` runs in the autocast dtype."""
        r, b, n, d = u.shape
        acc = torch.promote_types(u.dtype, torch.float32)  # float32 under autocast; float64 stays float64
        w = torch.cat([self.q_w, self.k_w, self.v_w], dim=-1).to(acc)
        with torch.autocast(u.device.type, enabled=False):
            q, k, v = linear(u.to(acc), w, torch.cat([self.q_b, self.k_b, self.v_b], dim=-1).to(acc)).split(d, -1)
        s, kern = self.kernels(n, acc)
        k = causal_long_conv(k, s) + k * self.shift_skip.to(acc)[:, None, None]
        pb, g = self.block, d // self.block
        same = self.same_head.to(acc)[:, None, None, None]  # (R, 1, 1, 1, P, P)
        kv = k.view(r, b, n, g, pb, 1) * v.view(r, b, n, g, 1, pb) * same  # (R, B, N, G, P, P)
        runs = torch.arange(r, device=u.device)[:, None, None]
        per_row = kern[runs, self.head_of]  # (R, G, P, n): row i of block g uses its head's kernel
        channels = per_row[:, :, :, None].expand(r, g, pb, pb, n).reshape(r, g * pb * pb, n)
        skip = self.masked("ssm_skip").to(acc)[runs, self.head_of][..., None]  # (R, G, P, 1)
        y = causal_long_conv(kv.reshape(r, b, n, -1), channels).view(kv.shape) + kv * skip[:, None, None]
        return q.view(r, b, n, g, pb), y

    def readout(self, q: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``o[h p + j] = Σ_i q[h p + i] Y[i, j]`` (blocks hold whole heads), then ``W_o``: ``(R, B, *, d)``."""
        o = (q[..., None] * y).sum(-2)  # (R, B, *, G, P): summed over i
        return linear(o.flatten(-2).to(dtype), self.o_w, self.o_b)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        q, y = self.products(u)
        return self.readout(q, y, u.dtype)

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """The convolutions at every position; the query gate and ``W_o`` at the query rows only."""
        q, y = self.products(u)
        q_at = gather_rows(q.flatten(3), qpos).unflatten(3, q.shape[3:])
        y_at = gather_rows(y.flatten(3), qpos).unflatten(3, y.shape[3:])
        return self.readout(q_at, y_at, u.dtype)

    # ---------------------------------------------------------------- naive reference and recurrent mode (one run)
    def run_sizes(self, run: int) -> tuple[int, int, int]:
        """``(p, H, taps)`` of run ``run``: its head dim, its heads and its shift filter's taps ``min(n, L)``."""
        p = int(self.run_knobs[run]["head_dim"])
        return p, self.d // p, min(int(self.run_knobs[run]["d_state"]), self.max_len)

    def reference_kernels(self, run: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``run``'s kernels over ``n`` lags, written directly: ``s (d, n)`` and ``K (H, n)``."""
        p = self.run_parameters(run)
        b, c, width = p["shift_b"], p["shift_c"], p["shift_b"].shape[-1]
        s = torch.stack([(b[:, : width - lag] * c[:, lag:]).sum(-1) for lag in range(min(n, width))], dim=-1)
        a_bar, b_bar, c_ssm = discretised(p)
        powers = a_bar[..., None] ** torch.arange(n, device=a_bar.device, dtype=p["log_dt"].dtype)  # (H, m, n)
        return F.pad(s, (0, n - s.shape[-1])), 2 * (c_ssm[..., None] * b_bar[..., None] * powers).real.sum(1)

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        return self.reference_from_kernels(run, u, *self.reference_kernels(run, u.shape[1]))

    def reference_from_kernels(
        self, run: int, u: torch.Tensor, shift: torch.Tensor, kernel: torch.Tensor
    ) -> torch.Tensor:
        """Run ``run`` on ``u (B, N, d)`` given its two kernels ``shift (d, ≥N)`` and ``kernel (H, ≥N)``: both
        convolutions lag by lag. (The golden test also feeds it the reference's own kernels.)"""
        p = self.run_parameters(run)
        hd, heads, _ = self.run_sizes(run)
        b, n, d = u.shape
        q, k, v = u @ p["q_w"] + p["q_b"], u @ p["k_w"] + p["k_b"], u @ p["v_w"] + p["v_b"]
        k_shifted = k * p["shift_skip"]
        for lag in range(n):  # s_lag ⊙ k_{t−lag} for every t ≥ lag
            k_shifted = k_shifted + F.pad(shift[:, lag] * k[:, : n - lag], (0, 0, lag, 0))
        kv = k_shifted.view(b, n, heads, hd, 1) * v.view(b, n, heads, 1, hd)  # (B, N, H, p, p)
        y = kv * p["ssm_skip"][:, None, None]
        for lag in range(n):
            y = y + F.pad(kernel[:, lag, None, None] * kv[:, : n - lag], (0, 0, 0, 0, 0, 0, lag, 0))
        o = (q.view(b, n, heads, hd, 1) * y).sum(3)  # (B, N, H, p): channel h·p + j
        return o.reshape(b, n, d) @ p["o_w"] + p["o_b"]

    def step(self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None):
        p = self.run_parameters(run)
        hd, heads, taps = self.run_sizes(run)
        b = u_t.shape[0]
        q, k, v = u_t @ p["q_w"] + p["q_b"], u_t @ p["k_w"] + p["k_b"], u_t @ p["v_w"] + p["v_b"]
        shift, _ = self.reference_kernels(run, taps)  # (d, taps)
        if state is None:
            register = torch.zeros(b, self.d, taps - 1, dtype=u_t.dtype, device=u_t.device)
        else:
            register = state["shift"]
        window = torch.cat([register, k[..., None]], dim=-1)  # (B, d, taps): oldest first, k_t last
        k_shifted = (window * shift.flip(-1)).sum(-1) + p["shift_skip"] * k
        kv = k_shifted.view(b, heads, hd, 1) * v.view(b, heads, 1, hd)  # (B, H, p, p)
        a_bar, b_bar, c_ssm = discretised(p)  # (H, m)
        prev = 0 if state is None else torch.view_as_complex(state["ssm"])
        s = a_bar[:, None, None] * prev + b_bar[:, None, None] * kv[..., None]  # (B, H, p, p, m)
        y = 2 * (c_ssm[:, None, None] * s).real.sum(-1) + p["ssm_skip"][:, None, None] * kv
        o = (q.view(b, heads, hd, 1) * y).sum(2).reshape(b, self.d)
        return o @ p["o_w"] + p["o_b"], {"shift": window[..., 1:], "ssm": torch.view_as_real(s)}

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The register and ``S_N = Σ_t Ā^{N−1−t} B̄ (kv)_t`` after ``u (N, d)``, in one pass (tests compare with
        :meth:`step`)."""
        p = self.run_parameters(run)
        hd, heads, taps = self.run_sizes(run)
        n = u.shape[0]
        k = u @ p["k_w"] + p["k_b"]
        shift, _ = self.reference_kernels(run, n)
        k_shifted = k * p["shift_skip"]
        for lag in range(n):
            k_shifted = k_shifted + F.pad(shift[:, lag] * k[: n - lag], (0, 0, lag, 0))
        kv = k_shifted.view(n, heads, hd, 1) * (u @ p["v_w"] + p["v_b"]).view(n, heads, 1, hd)
        a_bar, b_bar, _ = discretised(p)
        age = torch.arange(n - 1, -1, -1, dtype=u.dtype, device=u.device)  # N − 1 − t
        weight = b_bar[..., None] * a_bar[..., None] ** age  # (H, m, N)
        s = torch.einsum("hmt,thij->hijm", weight, kv.to(weight.dtype))
        register = F.pad(k, (0, 0, taps - 1, 0))[n:].T  # (d, taps − 1): zeros before the first key
        return {"shift": register, "ssm": torch.view_as_real(s)}

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        n, p = int(knobs["d_state"]), int(knobs["head_dim"])
        return d_model * (min(n, max_len) - 1) + p * d_model * n
