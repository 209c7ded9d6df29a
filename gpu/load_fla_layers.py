"""Constructions inside fla's own layer classes: ``fla.layers.DeltaNet`` and ``fla.layers.BasedLinearAttention``.

fla-core (``pip install -e ".[gpu]"``) is imported lazily, when a loader runs: its kernels are Triton, so these
loaders need CUDA. Parameter names and forwards were read from fla's source (``fla/layers/delta_net.py``,
``fla/layers/based.py``, ``fla/modules/conv/short_conv.py``); every mapping below is an explicit key map checked by
:func:`mqarkit.gpu.load_mapping.load_checked` (a shape assertion per tensor, the module's keys covered exactly,
``load_state_dict(strict=True)``), so a renamed or reshaped parameter in another fla version fails loudly.

**DeltaNet** (:func:`load_fla_deltanet`, construction ``delta_rule``, U10). The layer computes
``q = silu(conv_q(x Wq^T))``, ``k = silu(conv_k(x Wk^T))``, ``v = silu(conv_v(x Wv^T))`` (depthwise causal
convolutions of ``conv_size`` taps, Conv1d layout: lag ``s`` at index ``conv_size - 1 - s``),
``beta = sigmoid(x Wb^T)``, the delta rule with ``q, k`` L2-normalised in the kernel, an ``RMSNorm`` of each head's
output and ``o_proj``. One head, ``hidden_size = c`` (the input is the one-hot token), ``d_k = c``, ``d_v = m``:

================  ==============================  ================================================================
fla key           value                           why
================  ==============================  ================================================================
q_proj.weight     ``gamma I_c``                   ``q_t = silu(gamma) e_{x_t}``, L2-normalised to ``e_{x_t}``
q_conv1d.weight   lag-0 tap 1                     no shift for queries
k_proj.weight     ``gamma I_c``
k_conv1d.weight   lag-1 tap 1                     the construction's shift ``X^1``: ``k_s = e_{x_{s-1}}``
v_proj.weight     ``gamma A^T`` (``A[u] = a(u)``)  ``silu(gamma a) = silu(gamma) a`` since ``a in {0, 1}^m``
v_conv1d.weight   lag-0 tap 1
b_proj.weight     ``logit(beta)`` in every column ``beta`` the construction's write strength (``beta = 1``: logit 16)
o_norm.weight     ones (``m``)                    RMSNorm: a positive rescaling of each read
o_proj.weight     ``[I_m; 0]`` (``(c, m)``)        the read lands in output channels ``[0, m)``
================  ==============================  ================================================================

The prediction is ``argmax_u <o_t[:m], b(u)>`` (``b = 2a - 1``), as the construction's readout. Limits of fla's
kernels: ``chunk`` runs in bf16 only (float32 goes through ``fused_recurrent``, which the layer also picks for
sequences of at most 64 tokens) and allows ``head_k_dim <= 256``, so one head serves ``c <= 256``.

**Based** (:func:`load_fla_based`, construction ``based_taylor``, U9). fla's ``BasedLinearAttention`` has no short
convolution, so the construction's shift stays our ``nn.Conv1d`` (:class:`~mqarkit.gpu.load_layers.LoadedCausalConv`)
and its lookup goes into fla's layer: ``h`` heads of width ``e`` (``feature_dim = e``, the layer's head width; ``e``
the power of two ``>= max(16, m)``, ``h = ceil(max(2c, d_v)/e)``, ``hidden_size = h e``). Every head gets the same
queries and keys (``wq``, ``wk`` in its first ``m`` feature channels), the values are split over the heads
(``v_proj`` rows ``[0, d_v)`` = ``wv^T``), ``o_proj`` is the identity on ``[0, d_v)``. In ``mode="parallel"`` fla
calls ``parallel_based(q, k, v, scale=1, use_norm=True)``: the kernel ``1 + q.k + (q.k)^2/2`` of the construction's
unscaled Taylor map, normalised by ``sum_s K + 1e-6`` (the same positive number in every head, so the argmax
readout is unchanged). Its ``chunk`` modes use ``TaylorFeatureMap``, whose kernel is ``1 + q.k/sqrt(e) +
(q.k)^2/(2e)``: there ``q`` and ``k`` are scaled by ``e^(1/4)`` each.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mqarkit.gpu.device import resolve_device
from mqarkit.gpu.load_layers import LoadedLayer
from mqarkit.gpu.load_mapping import Entry, embed_block, ir_array, load_checked
from mqarkit.gpu.loaders import LoadedModel, token_io

FLA_DTYPES = (torch.float32, torch.bfloat16)
BETA_ONE_LOGIT = 16.0  # sigmoid(16) = 1 - 1.1e-7: the closest a sigmoid gate gets to beta = 1
MAX_HEAD_K_DIM = 256  # fla's chunk_delta_rule: "current kernel does not support head dimension larger than 256"
DEFAULT_GAIN = 8.0  # gamma: silu(8) = 7.997, so silu(gamma a) = silu(gamma) a exactly for a in {0, 1}


def _check_target(device, dtype: torch.dtype) -> torch.device:
    dev = resolve_device(device)
    if dev.type != "cuda":
        raise RuntimeError(f"fla's layers run Triton kernels: they need a CUDA device (got device={dev})")
    if dtype not in FLA_DTYPES:
        raise ValueError(f"dtype={dtype}: fla's layers run in float32 or bfloat16 here")
    return dev


def _tap(width: int, conv_size: int, lag: int) -> torch.Tensor:
    """``(width, 1, conv_size)`` Conv1d weight with 1 at lag ``lag`` (index ``conv_size - 1 - lag``)."""
    w = torch.zeros(width, 1, conv_size, dtype=torch.float64)
    w[:, 0, conv_size - 1 - lag] = 1.0
    return w


class FlaDeltaNetModel(nn.Module):
    """One-hot tokens -> fla's ``DeltaNet`` layer -> argmax against the construction's readout codebook."""

    def __init__(self, layer: nn.Module, vocab_size: int, readout_codebook: np.ndarray, key_map: dict) -> None:
        super().__init__()
        self.layer, self.vocab_size, self.key_map = layer, vocab_size, key_map
        self.register_buffer("readout_codebook", torch.from_numpy(np.asarray(readout_codebook, np.float64)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` int64 -> the layer's output ``(B, N, c)``."""
        dtype = next(self.layer.parameters()).dtype
        x = torch.nn.functional.one_hot(inputs, self.vocab_size).to(dtype)
        out = self.layer(x)
        return out[0] if isinstance(out, tuple) else out

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        m = self.readout_codebook.shape[1]
        reads = self(inputs)[..., :m].float()
        return (reads @ self.readout_codebook.float().T).argmax(-1)


def load_fla_deltanet(
    construction, *, device=None, dtype: torch.dtype = torch.bfloat16, mode: str = "chunk", gain: float = DEFAULT_GAIN
) -> FlaDeltaNetModel:
    """The ``delta_rule`` construction inside ``fla.layers.DeltaNet`` (module docstring's key map)."""
    if construction.name != "delta_rule":
        raise ValueError(f"construction {construction.name!r}: load_fla_deltanet takes the delta_rule construction")
    if mode not in ("chunk", "fused_recurrent"):
        raise ValueError(f"mode={mode!r}: must be 'chunk' or 'fused_recurrent'")
    if construction.vocab_size > MAX_HEAD_K_DIM:
        raise ValueError(
            f"vocab_size={construction.vocab_size}: one DeltaNet head holds d_k = c one-hot keys and fla's chunk "
            f"kernel allows head_k_dim <= {MAX_HEAD_K_DIM}"
        )
    dev = _check_target(device, dtype)
    from fla.layers import DeltaNet  # optional dependency, imported lazily

    c, m, conv = construction.vocab_size, construction.code_width, 4
    layer = DeltaNet(
        mode=mode,
        hidden_size=c,
        expand_k=1.0,
        expand_v=m / c,  # fla 0.6 takes round(c * expand_v) and asserts it is within isclose of an integer
        num_heads=1,
        use_beta=True,
        use_gate=False,
        use_short_conv=True,
        conv_size=conv,
        conv_bias=False,
        qk_activation="silu",
        qk_norm="l2",
    )
    if layer.value_dim != m or layer.key_dim != c:
        raise ValueError(f"vocab_size={c}: fla's DeltaNet gave key/value dims {layer.key_dim}/{layer.value_dim}")
    beta = float(construction.beta)
    logit = BETA_ONE_LOGIT if beta >= 1 else math.log(beta / (1 - beta))
    values = torch.from_numpy(construction.value_codebook().astype(np.float64))  # (c, m) in {0, 1}
    eye = torch.eye(c, dtype=torch.float64)
    entries = [
        Entry("q_proj.weight", "gamma wq[token].T = gamma I_c", True, gain * eye),
        Entry("k_proj.weight", "gamma wk[prev_token].T = gamma I_c (shift in k_conv1d)", True, gain * eye),
        Entry("v_proj.weight", "gamma wv[token].T = gamma A^T", True, gain * values.T.contiguous()),
        Entry("b_proj.weight", f"logit(beta) = {logit:.6g}", False, torch.full((1, c), logit, dtype=torch.float64)),
        Entry("q_conv1d.weight", "lag-0 tap", False, _tap(c, conv, 0)),
        Entry("k_conv1d.weight", "lag-1 tap (the shift X^1)", False, _tap(c, conv, 1)),
        Entry("v_conv1d.weight", "lag-0 tap", False, _tap(m, conv, 0)),
        Entry("o_norm.weight", "ones", False, torch.ones(m, dtype=torch.float64)),
        Entry("o_proj.weight", "[I_m; 0]", False, embed_block((c, m), torch.eye(m, dtype=torch.float64))),
    ]
    key_map = load_checked(layer, entries, "fla DeltaNet (delta_rule)")
    model = FlaDeltaNetModel(layer, c, construction.readout_codebook(), key_map)
    return model.to(device=dev, dtype=dtype)


class LoadedFlaBased(LoadedLayer):
    """The IR's Taylor ``LinearAttention`` (unscaled map) inside ``fla.layers.BasedLinearAttention``."""

    def __init__(self, op, mode: str, what: str) -> None:
        super().__init__()
        from fla.layers import BasedLinearAttention  # optional dependency, imported lazily

        if op.feature_map.scale:
            raise ValueError(f"{what}: expects the unscaled Taylor map (based_taylor's)")
        m, dv = op.key_width, op.value_width
        self.in_width, self.out_width = op.in_width, op.out_width
        e = max(16, 1 << (m - 1).bit_length())
        h = -(-max(op.in_width, dv) // e)
        self.width = width = h * e
        self.mixer = BasedLinearAttention(
            hidden_size=width, feature_dim=e, num_key_value_heads=h, num_heads=h, mode=mode
        )
        # every mode computes the Taylor kernel of q.k/sqrt(e): ``parallel_based`` multiplies q by scale = e^-1/2,
        # the chunk modes' TaylorFeatureMap divides by e^1/4 per side; alpha = e^1/4 on q and k undoes it
        alpha = e**0.25
        q_rows, k_rows = torch.zeros(h * e, width, dtype=torch.float64), torch.zeros(h * e, width, dtype=torch.float64)
        wq, wk = alpha * ir_array(op.wq).T, alpha * ir_array(op.wk).T  # (m, in)
        for j in range(h):  # the same queries and keys in every head
            q_rows[j * e : j * e + m, : op.in_width] = wq
            k_rows[j * e : j * e + m, : op.in_width] = wk
        out = embed_block((width, h * e), torch.eye(dv, dtype=torch.float64))
        entries = [
            Entry("mixer.q_proj.weight", f"{alpha:.6g} wq.T in every head", True, q_rows),
            Entry("mixer.k_proj.weight", f"{alpha:.6g} wk.T in every head", True, k_rows),
            Entry(
                "mixer.v_proj.weight",
                "wv.T (values split over the heads)",
                True,
                embed_block((h * e, width), ir_array(op.wv).T),
            ),
            Entry("mixer.o_proj.weight", "I_dv", False, out),
        ]
        self.key_map = load_checked(self, entries, what)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(self._pad(x, self.width))[..., : self.out_width]


def load_fla_based(
    construction, *, device=None, dtype: torch.dtype = torch.bfloat16, mode: str = "parallel"
) -> LoadedModel:
    """The ``based_taylor`` construction with its lookup inside fla's ``BasedLinearAttention`` layer."""
    if construction.name != "based_taylor":
        raise ValueError(f"construction {construction.name!r}: load_fla_based takes the based_taylor construction")
    if mode not in ("parallel", "chunk", "fused_chunk"):
        raise ValueError(f"mode={mode!r}: must be 'parallel', 'chunk' or 'fused_chunk'")
    dev = _check_target(device, dtype)
    model = LoadedModel(construction.model, token_io(construction), construction.seq_len, "mqarkit", "based_taylor")
    model.layers[1] = LoadedFlaBased(construction.model.layers[1].op, mode, "based_taylor layer 1 (fla Based)")
    return model.to(device=dev, dtype=dtype)


def normalised_lookup_reference(construction, inputs: np.ndarray) -> np.ndarray:
    """What fla's normalising Based layer should write: the IR's (unnormalised) ``lookup`` divided by
    ``sum_{s <= t} K(q_t, k_s) + 1e-6``, float64: ``(n, N, d_v)``."""
    from mqarkit.constructions._attention_codes import shift_down

    op = construction.model.layers[1].op
    c = construction.vocab_size
    token = np.eye(c)[inputs]  # (n, N, c)
    x = np.concatenate([token, shift_down(token)], axis=-1)
    q, k = x @ ir_array(op.wq).numpy(), x @ ir_array(op.wk).numpy()
    s = q @ np.swapaxes(k, -1, -2)
    kern = np.tril(1 + s + 0.5 * s * s)
    lookup = kern @ (x @ ir_array(op.wv).numpy())
    return lookup / (kern.sum(-1, keepdims=True) + 1e-6)
