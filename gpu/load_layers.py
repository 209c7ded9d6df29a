"""One IR op -> one torch layer holding a real mixer, with its explicit, checked key map.

Every loaded layer maps ``x: (B, N, in_width) -> (B, N, out_width)`` (the IR op's widths) and keeps ``key_map``
(``state_dict`` key -> IR source, transposes marked). Our mixers are square (``d_model -> d_model``); an IR op with
``in_width, dk, dv, out_width`` is loaded into a mixer of width ``D = max(...)``: the input is zero-padded to ``D``
channels, the weights sit in the leading corner of each matrix (zeros elsewhere), the output keeps its first
``out_width`` channels. Padding channels are exactly zero, so they change nothing.

Mappings (``nn.Linear`` stores ``weight: (out, in)``, hence the transposes of the IR's ``(in, out)`` matrices):

=====================  ==========================================  =================================================
IR op                  torch module                                 key map
=====================  ==========================================  =================================================
Linear(W, b)           ``nn.Linear`` (+ ``position_bias`` (N, d))   ``linear.weight = W.T``; ``linear.bias = b`` (d,)
CausalConv(taps)       ``nn.Conv1d(d, d, k, groups=d)``, left pad   ``conv.weight[q, 0, k-1-s] = taps[s, q]`` (reversed)
BaseConv               our ``BaseConv(semantics="paper")``          ``projection.weight = W.T``, ``filter = h.T``,
                                                                    ``bias_proj/bias_conv = b1/b2`` tiled to (N, d)
SoftmaxAttention       our ``SoftmaxAttention`` (1 head, no bias)   ``Wqkv.weight[0:dk] = beta sqrt(D) wq.T``,
                       or ``nn.MultiheadAttention`` (target torch)  ``[D:D+dk] = wk.T``, ``[2D:2D+dv] = wv.T``;
                                                                    ``out_proj.weight = wo.T`` (or ``I_dv``)
UnnormalisedAttention  :class:`UnnormalisedAttentionMixer` below    same fused layout, no ``beta``
LinearAttention        our ``BasedLinearAttention`` (Taylor map)    ``proj_q = a wq.T`` (``a = sqrt(dk)`` when the IR
                                                                    map is unscaled), ``proj_k = wk.T``,
                                                                    ``proj_v = wv.T``, ``proj_o = wo.T`` (or ``I``)
DeltaRule              :class:`DeltaRuleMixer` below (targets       ``q_proj = wq.T``, ``k_proj = wk.T``,
                       mqarkit / torch; fla's ``DeltaNet`` layer:   ``v_proj = wv.T``, ``o_proj = wo.T`` (or ``I``)
                       :mod:`mqarkit.gpu.load_fla_layers`)
=====================  ==========================================  =================================================

``beta sqrt(D)`` in ``Wq``: our attention scales logits by ``1/sqrt(head_dim)``, the IR by ``beta``; folding the product
into ``Wq`` gives ``logits = beta q.k`` exactly. The strict mask runs as causal SDPA on shifted keys
(``y_i = attn(q_i, k_{<i})`` = causal attention of query ``i`` placed at ``i - 1`` over keys ``0..i-1``; row 0 is 0), so
the flash kernel serves it with no ``N x N`` mask.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mqarkit.gpu.load_mapping import Entry, embed_block, ir_array, load_checked
from mqarkit.gpu.mixers.attention import SoftmaxAttention as OurSoftmaxAttention
from mqarkit.gpu.mixers.attention import visible_keys
from mqarkit.gpu.mixers.baseconv import BaseConv as OurBaseConv
from mqarkit.gpu.mixers.based import BasedLinearAttention, taylor_features
from mqarkit.polynomials import (
    BaseConv,
    CausalConv,
    DeltaRule,
    Linear,
    LinearAttention,
    SoftmaxAttention,
    TaylorMap,
    UnnormalisedAttention,
)

TARGETS = ("mqarkit", "torch", "fla")


class LoadedLayer(nn.Module):
    """Base: ``in_width``, ``out_width``, ``key_map`` and padding helpers."""

    in_width: int
    out_width: int
    key_map: dict[str, str]

    def _pad(self, x: torch.Tensor, width: int) -> torch.Tensor:
        return F.pad(x, (0, width - x.shape[-1])) if width > x.shape[-1] else x


# ---------------------------------------------------------------------------------------------------------------------
class LoadedLinear(LoadedLayer):
    def __init__(self, op: Linear, seq_len: int, what: str) -> None:
        super().__init__()
        self.in_width, self.out_width = op.in_width, op.out_width
        per_channel = op.bias is not None and op.bias.ndim == 1
        self.linear = nn.Linear(op.in_width, op.out_width, bias=per_channel)
        entries = [Entry("linear.weight", "W", True, ir_array(op.weight).T.contiguous())]
        if per_channel:
            entries.append(Entry("linear.bias", "b", False, ir_array(op.bias)))
        self.position_bias = None
        if op.bias is not None and op.bias.ndim == 2:
            self.position_bias = nn.Parameter(torch.zeros(seq_len, op.out_width))
            entries.append(Entry("position_bias", "b (N, d_out)", False, ir_array(op.bias)))
        self.key_map = load_checked(self, entries, what)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y if self.position_bias is None else y + self.position_bias[: x.shape[1]]


class LoadedCausalConv(LoadedLayer):
    """Depthwise causal convolution as ``nn.Conv1d``: cross-correlation with ``k - 1`` left padding puts the tap of
    lag ``s`` at ``weight[..., k-1-s]``, so the IR taps are reversed along the lag axis."""

    def __init__(self, op: CausalConv, what: str) -> None:
        super().__init__()
        k, d = op.taps.shape
        self.in_width = self.out_width = d
        self.kernel_size = k
        self.conv = nn.Conv1d(d, d, k, groups=d, bias=False)
        taps = ir_array(op.taps)  # (k, d)
        weight = taps.T.flip(-1).unsqueeze(1).contiguous()  # (d, 1, k): lag s at k-1-s
        self.key_map = load_checked(self, [Entry("conv.weight", "taps.T reversed along lags", True, weight)], what)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        y = F.conv1d(F.pad(x.transpose(1, 2), (self.kernel_size - 1, 0)), self.conv.weight, groups=self.in_width)
        return y[..., :n].transpose(1, 2)


class LoadedBaseConv(LoadedLayer):
    """IR ``BaseConv`` -> our ``BaseConv(semantics="paper")`` (position-dependent biases, causal filters)."""

    def __init__(self, op: BaseConv, seq_len: int, what: str) -> None:
        super().__init__()
        if op.cyclic:
            raise ValueError(f"{what}: cyclic=True has no torch mixer (our BaseConv is causal)")
        d, k = op.in_width, op.kernel_size
        self.in_width = self.out_width = d
        self.mixer = OurBaseConv(d, seq_len, kernel_size=k, semantics="paper")

        def bias(arr, name: str) -> Entry:
            if arr is None:
                return Entry(f"mixer.{name}", "0 (no IR bias)", False, torch.zeros(seq_len, d, dtype=torch.float64))
            t = ir_array(arr)
            return Entry(
                f"mixer.{name}",
                "b (d,) tiled to (N, d)" if t.ndim == 1 else "b (N, d)",
                False,
                t.expand(seq_len, d).contiguous(),
            )

        entries = [
            Entry("mixer.projection.weight", "W", True, ir_array(op.weight).T.contiguous()),
            Entry("mixer.filter", "filters (k, d) -> (d, k) lag-ordered", True, ir_array(op.filters).T.contiguous()),
            bias(op.bias_linear, "bias_proj"),
            bias(op.bias_conv, "bias_conv"),
        ]
        self.key_map = load_checked(self, entries, what)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x)


# ---------------------------------------------------------------------------------------------------------------------
def fused_qkv(op, width: int, q_scale: float) -> torch.Tensor:
    """``(3D, D)``: the IR's ``wq, wk, wv`` (transposed) in the corners of the q, k, v row blocks."""
    block = (width, width)
    parts = [
        embed_block(block, q_scale * ir_array(op.wq).T),
        embed_block(block, ir_array(op.wk).T),
        embed_block(block, ir_array(op.wv).T),
    ]
    return torch.cat(parts, dim=0)


def out_matrix(op, width: int) -> tuple[torch.Tensor, str]:
    """``(D, D)``: the IR's ``wo`` (transposed), or ``I_dv`` when the op has none, in the leading corner; and its
    source label for the key map."""
    if op.wo is None:
        return embed_block((width, width), torch.eye(op.value_width, dtype=torch.float64)), "I_dv (no IR wo)"
    return embed_block((width, width), ir_array(op.wo).T), "wo"


def attention_width(op) -> int:
    """``D = max(widths)`` rounded up to a multiple of 8: SDPA's memory-efficient kernel needs it in float32 (else it
    falls back to the math kernel, which materialises ``N x N`` scores: 32 GiB at N = 65,536). Padding is exact."""
    width = max(op.in_width, op.key_width, op.value_width, op.out_width)
    return -(-width // 8) * 8


def strict_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``y_i = softmax_{j<i}(q_i.k_j / sqrt(e)) v_j``, ``y_0 = 0``; ``q, k, v: (B, H, N, e)``.

    Query ``i`` attends causally over keys ``0..i-1`` when it is placed at position ``i - 1`` of the shifted keys."""
    y = torch.zeros_like(q)
    if q.shape[2] > 1:
        y[:, :, 1:] = F.scaled_dot_product_attention(q[:, :, 1:], k[:, :, :-1], v[:, :, :-1], is_causal=True)
    return y


class LoadedSoftmaxAttention(LoadedLayer):
    """IR ``SoftmaxAttention`` -> our ``SoftmaxAttention`` (target mqarkit) or ``nn.MultiheadAttention`` (torch)."""

    def __init__(self, op: SoftmaxAttention, seq_len: int, target: str, what: str) -> None:
        super().__init__()
        self.in_width, self.out_width = op.in_width, op.out_width
        self.width = width = attention_width(op)
        self.mask, self.window, self.target = op.mask, op.window, target
        q_scale = float(op.beta) * math.sqrt(width)
        wqkv = fused_qkv(op, width, q_scale)
        out, out_src = out_matrix(op, width)
        src = f"[beta*sqrt(D) wq.T; wk.T; wv.T] (beta={float(op.beta):.6g}, D={width})"
        self.logit_bias = None
        if target == "torch":
            self.mixer = nn.MultiheadAttention(width, 1, bias=False, batch_first=True)
            entries = [
                Entry("mixer.in_proj_weight", src, True, wqkv),
                Entry("mixer.out_proj.weight", out_src, op.wo is not None, out),
            ]
            allowed = visible_keys(seq_len, op.mask, op.window)
            allowed[0, 0] = True  # a row with no key gives NaN: let row 0 see key 0, zero it afterwards
            bias = torch.zeros(seq_len, seq_len, dtype=torch.float64)
            if op.positional_bias is not None:
                bias = ir_array(op.positional_bias)
            self.register_buffer("attn_mask", bias.masked_fill(~allowed, float("-inf")), persistent=False)
        else:
            if op.positional_bias is not None:
                raise ValueError(
                    f"{what}: positional_bias (an additive (N, N) logit bias) has no slot in our SoftmaxAttention; "
                    "load with target='torch' (nn.MultiheadAttention takes a float attn_mask)"
                )
            self.mixer = OurSoftmaxAttention(width, num_heads=1, mask=op.mask, window=op.window, bias=False)
            entries = [
                Entry("mixer.Wqkv.weight", src, True, wqkv),
                Entry("mixer.out_proj.weight", out_src, op.wo is not None, out),
            ]
        self.key_map = load_checked(self, entries, what)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pad(x, self.width)
        n = x.shape[1]
        if self.target == "torch":
            mask = self.attn_mask[:n, :n].to(x.dtype)
            y, _ = self.mixer(x, x, x, attn_mask=mask, need_weights=False)
            if self.mask == "strict":
                y = y * (torch.arange(n, device=x.device) > 0).to(y.dtype)[:, None]
        elif self.mask == "strict":
            q, k, v = (t.transpose(1, 2) for t in self.mixer._qkv(x))  # (B, 1, N, D)
            y = self.mixer.out_proj(strict_attention(q, k, v).transpose(1, 2).flatten(2))
        else:
            y = self.mixer(x)
        return y[..., : self.out_width]


class UnnormalisedAttentionMixer(nn.Module):
    """``y_i = sum_{j in A(i)} (q_i.k_j) v_j`` then ``out_proj``, fused ``Wqkv: (3D, D)`` as our attention.

    No torch or third-party mixer computes softmax-free attention, so this is the mixer; ``reference`` is the same
    sum one query at a time."""

    def __init__(self, width: int, mask: str, window: int | None, chunk: int = 1024) -> None:
        super().__init__()
        self.width, self.mask, self.window, self.chunk = width, mask, window, chunk
        self.Wqkv = nn.Linear(width, 3 * width, bias=False)
        self.out_proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.Wqkv(x).chunk(3, dim=-1)  # (B, N, D) each
        n = x.shape[1]
        out = []
        for start in range(0, n, self.chunk):  # query chunks: O(chunk * N) memory
            stop = min(n, start + self.chunk)
            ok = visible_keys(n, self.mask, self.window, device=x.device)[start:stop]  # (C, N)
            scores = (q[:, start:stop] @ k.transpose(1, 2)) * ok.to(x.dtype)
            out.append(scores @ v)
        return self.out_proj(torch.cat(out, dim=1))

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.Wqkv(x).chunk(3, dim=-1)
        ok = visible_keys(x.shape[1], self.mask, self.window, device=x.device)
        y = torch.stack(
            [(((q[:, i : i + 1] * k).sum(-1) * ok[i]).unsqueeze(-1) * v).sum(1) for i in range(x.shape[1])], 1
        )
        return self.out_proj(y)


class LoadedUnnormalisedAttention(LoadedLayer):
    def __init__(self, op: UnnormalisedAttention, what: str) -> None:
        super().__init__()
        self.in_width, self.out_width = op.in_width, op.out_width
        self.width = width = attention_width(op)
        self.mixer = UnnormalisedAttentionMixer(width, op.mask, op.window)
        out, out_src = out_matrix(op, width)
        entries = [
            Entry("mixer.Wqkv.weight", "[wq.T; wk.T; wv.T]", True, fused_qkv(op, width, 1.0)),
            Entry("mixer.out_proj.weight", out_src, op.wo is not None, out),
        ]
        self.key_map = load_checked(self, entries, what)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(self._pad(x, self.width))[..., : self.out_width]


class LoadedTaylorAttention(LoadedLayer):
    """IR ``LinearAttention`` with a ``TaylorMap`` -> our ``BasedLinearAttention`` (1 head).

    Normalised: the mixer's own forward (``num / (den + eps)``, its eps set to the IR's). Unnormalised (the mixer
    always divides): the same projections, ``y_i = sum_{j<=i} K(q_i, k_j) v_j`` computed chunk by chunk with the state
    ``S = sum phi(k)^T v`` (torch), or fla's ``parallel_based(..., use_norm=False)`` (target fla, CUDA)."""

    def __init__(self, op: LinearAttention, target: str, what: str, chunk_size: int = 256) -> None:
        super().__init__()
        fmap = op.feature_map
        if not isinstance(fmap, TaylorMap):
            raise ValueError(f"{what}: feature_map {type(fmap).__name__} has no torch mixer (only TaylorMap: Based)")
        self.in_width, self.out_width = op.in_width, op.out_width
        dk = op.key_width
        self.width = width = max(op.in_width, op.value_width, op.out_width)
        self.normalise, self.target, self.chunk_size = bool(op.normalise), target, chunk_size
        self.mixer = BasedLinearAttention(
            width,
            feature_dim=dk,
            num_heads=1,
            layout=fmap.layout,
            eps=float(op.eps),
            impl="fla" if target == "fla" else "torch",
            chunk_size=chunk_size,
        )
        alpha = 1.0 if fmap.scale else math.sqrt(dk)  # our kernel uses s = q.k / sqrt(dk)
        out, out_src = out_matrix(op, width)
        entries = [
            Entry(
                "mixer.proj_q.weight", f"{alpha:.6g} * wq", True, embed_block((dk, width), alpha * ir_array(op.wq).T)
            ),
            Entry("mixer.proj_k.weight", "wk", True, embed_block((dk, width), ir_array(op.wk).T)),
            Entry("mixer.proj_v.weight", "wv", True, embed_block((width, width), ir_array(op.wv).T)),
            Entry("mixer.proj_o.weight", out_src, op.wo is not None, out),
        ]
        self.key_map = load_checked(self, entries, what)

    def unnormalised(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mixer
        q, k, v = m._qkv(x)  # (B, N, 1, dk), (B, N, 1, dk), (B, N, 1, D)
        if self.target == "fla":
            from fla.ops.based import parallel_based  # optional dependency, imported lazily

            y = parallel_based(
                q.contiguous(), k.contiguous(), v.contiguous(), scale=m.feature_dim**-0.5, use_norm=False
            )
            return m._out(y.to(x.dtype))
        n, c = x.shape[1], self.chunk_size
        state = torch.zeros(x.shape[0], 1, m.num_features, m.head_dim, dtype=x.dtype, device=x.device)
        causal = torch.ones(c, c, dtype=torch.bool, device=x.device).tril()
        out = []
        for start in range(0, n, c):
            qs, ks, vs = q[:, start : start + c], k[:, start : start + c], v[:, start : start + c]
            kern = m._kernel(qs, ks) * causal[: qs.shape[1], : qs.shape[1]]  # (B, 1, C, C)
            y = torch.einsum("bhij,bjhe->bihe", kern, vs)
            y = y + torch.einsum("bihf,bhfe->bihe", taylor_features(qs, m.layout), state)
            state = state + torch.einsum("bjhf,bjhe->bhfe", taylor_features(ks, m.layout), vs)
            out.append(y)
        return m._out(torch.cat(out, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pad(x, self.width)
        y = self.mixer(x) if self.normalise else self.unnormalised(x)
        return y[..., : self.out_width]


class DeltaRuleMixer(nn.Module):
    """``S_i = S_{i-1} + beta k_i^T (v_i - k_i S_{i-1})``, ``y_i = q_i S_i`` then ``o_proj`` (the IR's
    :class:`~mqarkit.polynomials.DeltaRule`), one position at a time: the naive recurrent reference. Its state is
    ``S`` (``dk x dv``)."""

    def __init__(self, width: int, key_width: int, value_width: int, beta: float) -> None:
        super().__init__()
        self.beta = beta
        self.q_proj = nn.Linear(width, key_width, bias=False)
        self.k_proj = nn.Linear(width, key_width, bias=False)
        self.v_proj = nn.Linear(width, value_width, bias=False)
        self.o_proj = nn.Linear(value_width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # (B, N, dk), (B, N, dk), (B, N, dv)
        state = x.new_zeros(x.shape[0], k.shape[-1], v.shape[-1])
        out = []
        for i in range(x.shape[1]):
            ki = k[:, i]
            read = torch.einsum("bk,bkv->bv", ki, state)
            state = state + self.beta * ki[:, :, None] * (v[:, i] - read)[:, None, :]
            out.append(torch.einsum("bk,bkv->bv", q[:, i], state))
        return self.o_proj(torch.stack(out, dim=1))


class LoadedDeltaRule(LoadedLayer):
    """IR ``DeltaRule`` -> :class:`DeltaRuleMixer` (targets mqarkit / torch)."""

    def __init__(self, op: DeltaRule, target: str, what: str) -> None:
        super().__init__()
        if target == "fla":
            raise ValueError(
                f"{what}: the DeltaRule op loads into fla's DeltaNet layer as a whole model "
                "(mqarkit.gpu.load_fla_layers.load_fla_deltanet), not layer by layer"
            )
        self.in_width, self.out_width = op.in_width, op.out_width
        self.width = width = max(op.in_width, op.value_width, op.out_width)
        self.mixer = DeltaRuleMixer(width, op.key_width, op.value_width, float(op.beta))
        out = embed_block((width, op.value_width), torch.eye(op.value_width, dtype=torch.float64))
        out_src = "I_dv (no IR wo)"
        if op.wo is not None:
            out, out_src = embed_block((width, op.value_width), ir_array(op.wo).T), "wo"
        entries = [
            Entry("mixer.q_proj.weight", "wq", True, embed_block((op.key_width, width), ir_array(op.wq).T)),
            Entry("mixer.k_proj.weight", "wk", True, embed_block((op.key_width, width), ir_array(op.wk).T)),
            Entry("mixer.v_proj.weight", "wv", True, embed_block((op.value_width, width), ir_array(op.wv).T)),
            Entry("mixer.o_proj.weight", out_src, op.wo is not None, out),
        ]
        self.key_map = load_checked(self, entries, what)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(self._pad(x, self.width))[..., : self.out_width]


def load_layer(op, seq_len: int, target: str, what: str) -> LoadedLayer:
    """The loaded layer of one IR op (see the module docstring for every mapping)."""
    if isinstance(op, Linear):
        return LoadedLinear(op, seq_len, what)
    if isinstance(op, CausalConv):
        return LoadedCausalConv(op, what)
    if isinstance(op, BaseConv):
        return LoadedBaseConv(op, seq_len, what)
    if isinstance(op, SoftmaxAttention):
        return LoadedSoftmaxAttention(op, seq_len, target, what)
    if isinstance(op, UnnormalisedAttention):
        return LoadedUnnormalisedAttention(op, what)
    if isinstance(op, LinearAttention):
        return LoadedTaylorAttention(op, target, what)
    if isinstance(op, DeltaRule):
        return LoadedDeltaRule(op, target, what)
    raise ValueError(f"{what}: op {type(op).__name__} has no torch mapping")
