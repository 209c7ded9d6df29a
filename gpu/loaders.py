"""Load a Construction into torch mixers: ``load(construction, target=..., device=..., dtype=...) -> LoadedModel``.

The construction's IR model (``construction.model``: a residual stream of named blocks and layers that read some
blocks and write others) becomes a :class:`LoadedModel`: each IR layer is a loaded torch layer
(:mod:`mqarkit.gpu.load_layers`: our mixers, ``nn.Conv1d`` / ``nn.Linear``, ``nn.MultiheadAttention``, fla's Based
kernel) with an explicit checked key map, and the stream glue is spelled out here: a layer reads the concatenation of
its ``reads`` blocks, and writes its output split over its ``writes`` blocks, added (``residual``) or replacing.

The construction also fixes how tokens enter and leave the stream (:class:`TokenIO`): which block holds the token code
and which codebook encodes it; which block is read out, against which codebook, and which token ids the codebook rows
are. ``LoadedModel.predict(inputs)`` is then ``token_ids[argmax_u <out_block[i], codebook[u]>]`` at every position
(ties to the first row, as NumPy), computed in chunks of positions so that a 65,536-token vocabulary fits.

Targets: ``"mqarkit"`` (our mixers), ``"torch"`` (softmax attention through ``torch.nn.MultiheadAttention``; every
other op as for mqarkit), ``"fla"`` (Taylor linear attention through fla-core's Triton kernels; CUDA only).

The input-dependent BaseConv construction builds one model per example (its lags depend on the input):
:func:`load` returns a :class:`PerExampleLoadedModel` that loads ``construction.model_for(tokens)`` per example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mqarkit.gpu.device import resolve_device
from mqarkit.gpu.load_layers import TARGETS, LoadedLayer, load_layer

CPU_DTYPES = (torch.float64, torch.float32)
CUDA_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class TokenIO:
    """How tokens enter and leave a construction's stream.

    input_block / input_codebook: ``(c, w_in)``: stream block ``input_block`` at position ``i`` holds
    ``input_codebook[x_i]``, every other block 0. readout_block / readout_codebook ``(K, w_out)`` / token_ids ``(K,)``.
    """

    input_block: str
    input_codebook: np.ndarray
    readout_block: str
    readout_codebook: np.ndarray
    token_ids: np.ndarray


def token_io(construction) -> TokenIO:
    """The :class:`TokenIO` of a registered construction (by name; each reads its own codebooks)."""
    from mqarkit.constructions._attention_codes import one_hot

    name, c = construction.name, construction.vocab_size
    ids = np.arange(c, dtype=np.int64)
    if name in ("attention_onehot", "sliding_window"):
        return TokenIO("token", one_hot(c), "lookup", one_hot(c), ids)
    if name == "attention_signcode":
        book = construction.codebook()
        return TokenIO("token", book, "lookup", book, ids)
    if name == "based_taylor":
        values = construction.value_codebook()
        return TokenIO(
            "token", np.eye(c, dtype=np.int64), "lookup", values, c // 2 + np.arange(values.shape[0], dtype=np.int64)
        )
    if name == "delta_rule":
        return TokenIO("token", np.eye(c, dtype=np.int64), "lookup", construction.readout_codebook(), ids)
    if name in ("baseconv_data_independent", "baseconv_input_dependent", "baseconv_argmax_lookup"):
        book = construction.codebook() if hasattr(construction, "codebook") else np.eye(c, dtype=np.int64)
        return TokenIO("token", book, "out", book, ids)
    raise ValueError(f"construction {name!r}: no token input/readout is known to the loader")


def check_dtype(dtype: torch.dtype, device: torch.device, target: str) -> torch.dtype:
    allowed = CUDA_DTYPES if device.type == "cuda" else CPU_DTYPES
    if target == "fla":
        allowed = tuple(d for d in allowed if d != torch.float64)
    if dtype not in allowed:
        names = ", ".join(str(d).removeprefix("torch.") for d in allowed)
        raise ValueError(f"dtype={dtype}: unsupported on {device.type} with target={target!r}; allowed: {names}")
    return dtype


class LoadedModel(nn.Module):
    """A construction's IR model as torch layers plus the stream glue; ``(B, N)`` token ids in."""

    def __init__(self, model, io: TokenIO, seq_len: int, target: str, name: str = "") -> None:
        super().__init__()
        self.stream, self.io, self.seq_len, self.target = model.stream, io, seq_len, target
        self.wiring = [(layer.reads, layer.writes, layer.residual) for layer in model.layers]
        self.layers = nn.ModuleList(
            load_layer(layer.op, seq_len, target, f"{name or 'model'} layer {i} ({layer.op.label})")
            for i, layer in enumerate(model.layers)
        )
        self.register_buffer("input_codebook", torch.from_numpy(np.asarray(io.input_codebook, np.float64)))
        self.register_buffer("readout_codebook", torch.from_numpy(np.asarray(io.readout_codebook, np.float64)))
        self.register_buffer("token_ids", torch.from_numpy(np.asarray(io.token_ids, np.int64)))

    @property
    def key_maps(self) -> list[dict[str, str]]:
        return [layer.key_map for layer in self.layers]

    def _check_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.dtype != torch.int64 or inputs.dim() != 2:
            raise ValueError(f"inputs: must be an int64 tensor (B, N), got {getattr(inputs, 'dtype', type(inputs))}")
        if inputs.shape[1] != self.seq_len:
            raise ValueError(f"inputs: shape {tuple(inputs.shape)} must be (B, seq_len={self.seq_len})")
        c = self.input_codebook.shape[0]
        if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= c):
            raise ValueError(f"inputs: token ids must lie in [0, vocab_size={c})")
        return inputs.to(self.input_codebook.device)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` tokens -> stream ``(B, N, width)``: the input block holds the token codes, the rest is 0."""
        inputs = self._check_inputs(inputs)
        book = self.input_codebook
        state = torch.zeros(*inputs.shape, self.stream.width, dtype=book.dtype, device=book.device)
        state[..., self.stream.slice(self.io.input_block)] = book[inputs]
        return state

    def apply_layer(self, index: int, state: torch.Tensor) -> torch.Tensor:
        """One layer with its glue: read the ``reads`` blocks, run the torch layer, write/add the ``writes`` blocks."""
        reads, writes, residual = self.wiring[index]
        x = torch.cat([state[..., self.stream.slice(n)] for n in reads], dim=-1)
        y = self.layers[index](x)
        new = state.clone()
        start = 0
        for n in writes:
            sl = self.stream.slice(n)
            part = y[..., start : start + sl.stop - sl.start]
            new[..., sl] = new[..., sl] + part if residual else part
            start += sl.stop - sl.start
        return new

    @torch.no_grad()
    def trace(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """Stream states after each layer, index 0 being the embedded input (as ``evaluate(..., trace=True)``)."""
        states = [self.embed(inputs)]
        for i in range(len(self.layers)):
            states.append(self.apply_layer(i, states[-1]))
        return states

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        state = self.embed(inputs)
        for i in range(len(self.layers)):
            state = self.apply_layer(i, state)
        return state

    def readout(self, state: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """``(B, N, width)`` -> ``(B, N)`` token ids, ``argmax_u <block, codebook[u]>`` over chunks of positions."""
        block = state[..., self.stream.slice(self.io.readout_block)]
        book = self.readout_codebook.to(block.dtype)
        flat = block.reshape(-1, block.shape[-1])
        best = torch.cat([(flat[s : s + chunk] @ book.T).argmax(-1) for s in range(0, flat.shape[0], chunk)])
        return self.token_ids[best].reshape(block.shape[:-1])

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` int64 -> ``(B, N)`` int64 next-token predictions at every position."""
        return self.readout(self.forward(inputs))


class PerExampleLoadedModel(nn.Module):
    """The input-dependent construction: one loaded model per example (``construction.model_for(tokens)``)."""

    def __init__(self, construction, target: str, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.construction, self.target, self.device, self.dtype = construction, target, device, dtype
        self.template = _load_model(construction.model, construction, target, device, dtype)

    def model_for(self, tokens: torch.Tensor) -> LoadedModel:
        ir = self.construction.model_for(tokens.detach().cpu().numpy())
        return _load_model(ir, self.construction, self.target, self.device, self.dtype)

    @torch.no_grad()
    def trace(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        per = [self.model_for(x).trace(x[None]) for x in inputs]
        return [torch.cat([p[k] for p in per]) for k in range(len(per[0]))]

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model_for(x).predict(x[None]) for x in inputs])


def _load_model(ir, construction, target, device, dtype) -> LoadedModel:
    loaded = LoadedModel(ir, token_io(construction), construction.seq_len, target, construction.name)
    return loaded.to(device=device, dtype=dtype)


def load(construction, *, target: str = "mqarkit", device=None, dtype: torch.dtype = torch.float32):
    """Load ``construction``'s weights into torch mixers on ``device`` in ``dtype`` (see the module docstring).

    Raises ``ValueError`` for an unknown target, a dtype the device/target cannot run (CPU: float64/float32; fla:
    no float64), an op without a torch mapping; ``RuntimeError`` for CUDA without a GPU and for ``fla`` without CUDA.
    """
    from mqarkit.constructions import check_construction

    check_construction(construction)
    if target not in TARGETS:
        raise ValueError(f"target={target!r}: must be one of {TARGETS}")
    dev = resolve_device(device)
    if target == "fla" and dev.type != "cuda":
        raise RuntimeError(f"target='fla': fla-core's Triton kernels need a CUDA device (got device={dev})")
    check_dtype(dtype, dev, target)
    if hasattr(construction, "model_for"):
        return PerExampleLoadedModel(construction, target, dev, dtype)
    return _load_model(construction.model, construction, target, dev, dtype)


__all__ = ["LoadedLayer", "LoadedModel", "PerExampleLoadedModel", "TokenIO", "load", "token_io"]
