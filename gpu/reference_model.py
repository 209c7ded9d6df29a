"""The reference implementation's ``LanguageModel`` forward, written here, for the mixers our exports use.

The reference (HazyResearch/zoology, ``zoology.model.LanguageModel`` built from ``zoology.config.ModelConfig``) is
described by ``../shared/golden/README.md`` and theory.md §4.5; :func:`mqarkit.gpu.reference_model.from_config`
builds our model from the same ``ModelConfig`` keyword arguments (a dict, as ``config.json`` holds them) and
:func:`load_reference_state_dict` loads a reference ``state_dict`` under its exact keys (``reference_key_map``;
tests reproduce the golden whole models ``lm_*.npz`` to float64 precision).

Forward, eval mode (dropouts and drop-path inactive), ``E`` the word embeddings ``(c, d)``::

    h = E[x];  r = None
    for block in layers:                       # TransformerBlock with an Identity state mixer
        r = h if r is None else h + r
        h = mixer(norm1(r));  r = h + r
        h = norm2(r)                           # Identity: norm2's output is added to r by the next block ...
    r = h + r                                  # ... or here, before the final norm
    logits = ln_f(r) @ E^T                     # lm_head tied to E

``norm1``/``norm2`` are ``nn.LayerNorm(d)`` (eps 1e-5), ``ln_f`` uses ``layer_norm_epsilon``.

Mixers (``sequence_mixer``; a ``Hybrid`` picks ``configs[layer % len(configs)]`` and nests it as ``.mixer``):

=======================================  ===========================================  ===========================
reference mixer (kwargs we read)         our module                                   key map (reference -> ours)
=======================================  ===========================================  ===========================
``base_conv.BaseConv`` short             ``BaseConv(semantics="zoology", k)``         ``conv.conv.weight`` ->
(``kernel_size`` int or per-layer list)                                               ``conv_weight``,
                                                                                      ``conv.conv.bias`` ->
                                                                                      ``conv_bias``
``BaseConv`` long, explicit              ``BaseConv(semantics="zoology", None)``      ``conv.filter`` -> ``filter``
(``kernel_size=-1``,
``implicit_long_conv=False``)
``BaseConv`` long, implicit              :class:`ImplicitFilterBaseConv`              ``conv.pos_emb.z``,
(``kernel_size=-1``, default)                                                         ``conv.mlp.{0,2}.*`` -> same
``attention.MHA`` (``num_heads``)        ``SoftmaxAttention(mask="causal")``          identity
``slide_attn.SlidingAttn``               ``SlidingWindowAttention(window=b + 1)``     identity
(``block_size=b``)
``based.Based`` (``feature_dim``,        ``BasedLinearAttention(layout="full",        identity
``num_heads = num_key_value_heads``,     eps=1e-12)``
Taylor map)
=======================================  ===========================================  ===========================

No tensor is transposed: every reference tensor already has our layout (the shape assertions prove it). The MHA's
additive ``-10000`` mask and our ``-inf`` mask give the same float64 outputs whenever scores stay far below 10^4
(the golden models and every export). Anything else in a config (positional embeddings, an MLP state mixer,
untied embeddings, other mixers) raises ``ValueError`` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from mqarkit.gpu.mixers.attention import SlidingWindowAttention, SoftmaxAttention
from mqarkit.gpu.mixers.baseconv import BaseConv
from mqarkit.gpu.mixers.based import BasedLinearAttention

PREFIX = "zoology.mixers."
BASECONV = PREFIX + "base_conv.BaseConv"
MHA = PREFIX + "attention.MHA"
SLIDING = PREFIX + "slide_attn.SlidingAttn"
BASED = PREFIX + "based.Based"
HYBRID = PREFIX + "hybrid.Hybrid"
IDENTITY = "torch.nn.Identity"
MIXERS = (BASECONV, MHA, SLIDING, BASED)
ANY_LENGTH = 2**31 - 1  # our BaseConv's length bound for a short conv (zoology semantics keeps no (N, d) tensor)
BLOCK_NORM_EPS = 1e-5  # nn.LayerNorm's default, used by norm1 / norm2
EMBEDDING_KEY = "backbone.embeddings.word_embeddings.weight"
HEAD_KEY = "lm_head.weight"


class ImplicitFilterBaseConv(BaseConv):
    """Zoology's BaseConv with an ``ImplicitLongConvolution``: the filter is ``mlp(z)``, ``z: (1, L, d_emb)``.

    ``mlp = Linear(d_emb, d_hidden) -> ReLU -> Linear(d_hidden, d)``; the filter ``(d, L)`` is the MLP's output
    transposed, lag-ordered; the FFT path adds ``u`` once more (``+ e_0``), as our zoology long conv does.
    """

    def __init__(self, d_model: int, seq_len: int, d_emb: int = 3, d_hidden: int = 16) -> None:
        super().__init__(d_model, seq_len, kernel_size=None, semantics="zoology")
        del self.filter  # replaced by the MLP below (our long conv's explicit filter)
        self.pos_emb = nn.Module()
        self.pos_emb.z = nn.Parameter(torch.zeros(1, seq_len, d_emb), requires_grad=False)
        self.mlp = nn.Sequential(nn.Linear(d_emb, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_model))

    def lag_filter(self) -> torch.Tensor:
        h = self.mlp(self.pos_emb.z)[0].transpose(0, 1)  # (d, L)
        identity = torch.zeros_like(h)
        identity[:, 0] = 1
        return h + identity


def _field(kwargs: Mapping, name: str, what: str, default=None):
    if name not in kwargs and default is None:
        raise ValueError(f"{what}: needs {name!r}")
    return kwargs.get(name, default)


def build_mixer(spec: Mapping, d_model: int, layer: int) -> tuple[nn.Module, dict[str, str]]:
    """One reference mixer config ``{"name", "kwargs"}`` -> (our module, key map reference suffix -> our key)."""
    name, kwargs = spec.get("name"), dict(spec.get("kwargs", {}))
    what = f"sequence_mixer {name!r} (layer {layer})"
    if name == BASECONV:
        l_max = int(_field(kwargs, "l_max", what))
        k = kwargs.get("kernel_size", 3)
        if isinstance(k, list):
            if layer >= len(k):
                raise ValueError(f"{what}: kernel_size list {k} has no entry for layer {layer}")
            k = k[layer]
        if kwargs.get("use_act", False):
            raise ValueError(f"{what}: use_act=True is not implemented")
        if k == -1 and kwargs.get("implicit_long_conv", True):
            module = ImplicitFilterBaseConv(d_model, l_max)
            names = ["conv.pos_emb.z", "conv.mlp.0.weight", "conv.mlp.0.bias", "conv.mlp.2.weight", "conv.mlp.2.bias"]
            keys = {n: n.removeprefix("conv.") for n in names}
        elif k == -1:
            module = BaseConv(d_model, l_max, kernel_size=None, semantics="zoology")
            keys = {"conv.filter": "filter"}
        elif isinstance(k, int) and 1 <= k <= l_max:
            # the reference's short convolution does not depend on l_max: any sequence length runs
            module = BaseConv(d_model, ANY_LENGTH, kernel_size=k, semantics="zoology")
            keys = {"conv.conv.weight": "conv_weight", "conv.conv.bias": "conv_bias"}
        else:
            raise ValueError(f"{what}: kernel_size={k!r} must be -1 or an int in [1, l_max={l_max}]")
        keys = {"projection.weight": "projection.weight", "projection.bias": "projection.bias", **keys}
        return module, keys
    if name == MHA:
        if not kwargs.get("bias", True):
            raise ValueError(f"{what}: bias=False is not implemented")
        module = SoftmaxAttention(d_model, num_heads=int(kwargs.get("num_heads", 1)), mask="causal")
        return module, {k: k for k in ("Wqkv.weight", "Wqkv.bias", "out_proj.weight", "out_proj.bias")}
    if name == SLIDING:
        if not kwargs.get("bias", True):
            raise ValueError(f"{what}: bias=False is not implemented")
        block_size = int(kwargs.get("block_size", 256))
        module = SlidingWindowAttention(d_model, window=block_size + 1)  # the reference admits block_size + 1 keys
        return module, {k: k for k in ("Wqkv.weight", "Wqkv.bias", "out_proj.weight", "out_proj.bias")}
    if name == BASED:
        heads, kv_heads = int(kwargs.get("num_heads", 12)), int(kwargs.get("num_key_value_heads", 12))
        if heads != kv_heads:
            raise ValueError(f"{what}: num_heads={heads} must equal num_key_value_heads={kv_heads}")
        if kwargs.get("feature_name", "taylor_exp") != "taylor_exp" or kwargs.get("feature_kwargs"):
            raise ValueError(f"{what}: only feature_name='taylor_exp' without feature_kwargs is implemented")
        if kwargs.get("apply_rotary", False) or not kwargs.get("causal", True):
            raise ValueError(f"{what}: apply_rotary=True and causal=False are not implemented")
        eps = float(kwargs.get("eps", 1e-12))
        feature_dim = int(kwargs.get("feature_dim", 16))
        # impl="torch": the reference's arithmetic (fla's kernel would add its own epsilon)
        module = BasedLinearAttention(
            d_model, feature_dim=feature_dim, num_heads=heads, layout="full", eps=eps, impl="torch"
        )
        return module, {k: k for k in ("proj_q.weight", "proj_k.weight", "proj_v.weight", "proj_o.weight")}
    raise ValueError(f"{what}: not implemented here; implemented mixers: {', '.join(MIXERS)} (or {HYBRID} of them)")


class Block(nn.Module):
    """A ``TransformerBlock`` with an Identity state mixer (see the module docstring)."""

    def __init__(self, mixer: nn.Module, d_model: int) -> None:
        super().__init__()
        self.sequence_mixer = mixer
        self.norm1 = nn.LayerNorm(d_model, eps=BLOCK_NORM_EPS)
        self.norm2 = nn.LayerNorm(d_model, eps=BLOCK_NORM_EPS)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        residual = hidden if residual is None else hidden + residual
        residual = self.sequence_mixer(self.norm1(residual)) + residual
        return self.norm2(residual), residual


class ReferenceLanguageModel(nn.Module):
    """Our implementation of the reference ``LanguageModel`` (``(B, N)`` int64 tokens -> ``(B, N, c)`` logits)."""

    def __init__(self, config: Mapping) -> None:
        super().__init__()
        self.config = dict(config)
        d, c, layers = check_config(self.config)
        self.d_model, self.vocab_size = d, c
        self.embedding = nn.Embedding(c, d)
        mixers, self.mixer_keys, self.mixer_prefixes = [], [], []
        spec = self.config["sequence_mixer"]
        for i in range(layers):
            if spec["name"] == HYBRID:
                inner = spec["kwargs"]["configs"][i % len(spec["kwargs"]["configs"])]
                prefix = f"backbone.layers.{i}.sequence_mixer.mixer."
            else:
                inner, prefix = spec, f"backbone.layers.{i}.sequence_mixer."
            module, keys = build_mixer(inner, d, i)
            mixers.append(module)
            self.mixer_keys.append(keys)
            self.mixer_prefixes.append(prefix)
        self.layers = nn.ModuleList(Block(m, d) for m in mixers)
        self.ln_f = nn.LayerNorm(d, eps=float(self.config.get("layer_norm_epsilon", 1e-5)))

    def hidden(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` -> the final hidden states ``ln_f(r)``: ``(B, N, d)`` (the reference's default return)."""
        if inputs.dtype != torch.int64 or inputs.dim() != 2:
            raise ValueError(f"inputs: must be an int64 tensor (B, N), got {inputs.dtype} of dim {inputs.dim()}")
        if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= self.vocab_size):
            raise ValueError(f"inputs: token ids must lie in [0, vocab_size={self.vocab_size})")
        hidden, residual = self.embedding(inputs), None
        for block in self.layers:
            hidden, residual = block(hidden, residual)
        return self.ln_f(hidden + residual)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, N, c)``: the final hidden states against the tied embedding."""
        return self.hidden(inputs) @ self.embedding.weight.T

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """``argmax`` of the logits, ``(B, N)`` int64, computed ``chunk`` examples at a time."""
        return torch.cat([self(inputs[s : s + chunk]).argmax(-1) for s in range(0, inputs.shape[0], chunk)])


def check_config(config: Mapping) -> tuple[int, int, int]:
    """``(d_model, vocab_size, n_layers)`` of a reference ``ModelConfig`` dict we implement; ``ValueError`` else."""
    for field, want in (
        ("block_type", "TransformerBlock"),
        ("max_position_embeddings", 0),
        ("learnable_word_embeddings", True),
        ("pad_vocab_size_multiple", 1),
        ("embedding_init_type", "default"),
    ):
        if field not in config:
            raise ValueError(f"config: needs {field!r} (the reference's default differs from what we implement)")
        if config[field] != want:
            raise ValueError(f"config.{field}={config[field]!r}: only {want!r} is implemented")
    state = config.get("state_mixer", {})
    if state.get("name") != IDENTITY:
        raise ValueError(f"config.state_mixer={state!r}: only {IDENTITY} is implemented")
    spec = config.get("sequence_mixer")
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError("config.sequence_mixer: must be a dict with 'name' and 'kwargs'")
    if spec["name"] == HYBRID and not spec.get("kwargs", {}).get("configs"):
        raise ValueError("config.sequence_mixer: a Hybrid needs kwargs.configs (a non-empty list)")
    values = []
    for field in ("d_model", "vocab_size", "n_layers"):
        v = config.get(field)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"config.{field}={v!r}: must be an int >= 1")
        values.append(v)
    return values[0], values[1], values[2]


def from_config(config: Mapping) -> ReferenceLanguageModel:
    """Our model for a reference ``ModelConfig`` dict (float64, eval mode, parameters to be loaded)."""
    return ReferenceLanguageModel(config).double().eval()


def load_reference_model(config: Mapping, state: Mapping[str, torch.Tensor]) -> ReferenceLanguageModel:
    """Our model for a reference ``ModelConfig`` dict with a reference ``state_dict`` loaded (:func:`from_config`,
    then :func:`load_reference_state_dict`): float64, eval mode."""
    model = from_config(config)
    load_reference_state_dict(model, state)
    return model


def reference_key_map(model: ReferenceLanguageModel) -> dict[str, str]:
    """Every reference ``state_dict`` key -> our key (the two tied keys both map to our embedding)."""
    keys = {EMBEDDING_KEY: "embedding.weight", HEAD_KEY: "embedding.weight"}
    for i, (prefix, mixer_keys) in enumerate(zip(model.mixer_prefixes, model.mixer_keys)):
        keys.update({prefix + ref: f"layers.{i}.sequence_mixer.{ours}" for ref, ours in mixer_keys.items()})
        for norm in ("norm1", "norm2"):
            for p in ("weight", "bias"):
                keys[f"backbone.layers.{i}.{norm}.{p}"] = f"layers.{i}.{norm}.{p}"
    keys.update({f"backbone.ln_f.{p}": f"ln_f.{p}" for p in ("weight", "bias")})
    return keys


def load_reference_state_dict(model: ReferenceLanguageModel, state: Mapping[str, torch.Tensor]) -> None:
    """Load a reference ``state_dict`` (its exact keys) into ``model``: key map, shape assertion per tensor, the tied
    pair checked equal, ``load_state_dict(strict=True)``. ``ValueError`` naming the first problem."""
    key_map = reference_key_map(model)
    if set(state) != set(key_map):
        missing, extra = sorted(set(key_map) - set(state)), sorted(set(state) - set(key_map))
        raise ValueError(f"state: keys differ from the reference layout: missing {missing}, unexpected {extra}")
    ours = model.state_dict()
    if set(ours) != set(key_map.values()):
        raise ValueError(f"model: our keys {sorted(ours)} are not covered by the key map")
    if not torch.equal(torch.as_tensor(state[EMBEDDING_KEY]), torch.as_tensor(state[HEAD_KEY])):
        raise ValueError(f"state: {HEAD_KEY} must equal {EMBEDDING_KEY} (the head is tied to the embeddings)")
    loaded = {}
    for ref, dst in key_map.items():
        tensor = torch.as_tensor(state[ref])
        if tuple(tensor.shape) != tuple(ours[dst].shape):
            raise ValueError(f"state: {ref} has shape {tuple(tensor.shape)}, {dst} needs {tuple(ours[dst].shape)}")
        loaded[dst] = tensor.to(ours[dst].dtype)
    model.load_state_dict(loaded, strict=True)


def reference_state_dict(model: ReferenceLanguageModel) -> dict[str, torch.Tensor]:
    """``model``'s parameters under the reference's exact keys (inverse of :func:`load_reference_state_dict`)."""
    ours = model.state_dict()
    return {ref: ours[dst].detach().clone() for ref, dst in reference_key_map(model).items()}


def state_size_reported(model: ReferenceLanguageModel, seq_len: int) -> int:
    """The reference's ``LanguageModel.state_size(seq_len)`` (bytes: its mixers' counts summed, times 4; theory.md
    §5.1): BaseConv short ``d k``, long ``d L``; MHA ``2 d L``; SlidingAttn ``2 b d``; Based ``h e F + h F`` with
    ``F = d'(d'+1)/2 + d' + 1`` (the compressed count)."""
    total = 0.0
    for block in model.layers:
        m = block.sequence_mixer
        if isinstance(m, BaseConv):
            total += m.d_model * (seq_len if m.long else m.kernel_size)
        elif isinstance(m, SlidingWindowAttention):
            total += 2 * (m.window - 1) * m.d_model
        elif isinstance(m, SoftmaxAttention):
            total += 2 * m.d_model * seq_len
        else:
            f = m.feature_dim
            features = f * (f + 1) / 2 + f + 1
            total += m.num_heads * (m.d_model // m.num_heads) * features + m.num_heads * features
    return int(math.floor(total * 4))


def measured_state_numbers(model: ReferenceLanguageModel, seq_len: int) -> int:
    """Numbers the model's mixers carry in their recurrent modes after ``seq_len`` steps, measured by running them
    (:mod:`mqarkit.gpu.state`'s policy: conv caches ``d (k - 1)``, KV caches, linear attention's ``S`` and ``z``)."""
    return sum(block.sequence_mixer.state_numbers(seq_len) for block in model.layers)
