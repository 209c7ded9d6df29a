"""One run's architecture (:class:`ModelConfig`): the trunk's sizes and the mixer under test.

The mixer is one of three things:

- a registered family (``family = "based"``, :data:`mqarkit.gpu.frontier.families.FAMILIES`) with its knobs;
- a user's own family, a :class:`~mqarkit.gpu.frontier.protocol.StackedMixer` subclass named by import path
  (``family = "my_package.my_module:MyMixer"``), with its knobs; stacked like a built-in one;
- any ``torch.nn.Module`` mapping ``(B, N, d) -> (B, N, d)``, named by import path with keyword arguments
  (``mixer = "my_package.my_module:MyModule"``, ``mixer_kwargs = {...}``; the family is then ``"module"``), trained one
  model per run (:mod:`mqarkit.gpu.frontier.user_mixers`).

The topology (``layers``, :data:`LAYERS`): ``"hybrid"`` (the default; block 0 a short BaseConv, block 1 the mixer, the
model of [B] Fig. 2's attention, Based and sliding-window configs) or ``"mixer"`` (the family's mixer in both blocks,
each with its own parameters, in the block the reference wraps it in: how [B] Fig. 2 and [Z] Fig. 2 build Mamba, H3,
Hyena and RWKV). :mod:`mqarkit.gpu.frontier.model` builds both.

Knob values and keyword arguments are stored in hashable, canonical forms (a sorted tuple; canonical JSON), so that a
config is a frozen value: equal configs are equal runs, and :meth:`ModelConfig.stack_key` groups runs that can share
one stacked computation (every field but the knobs: runs of one stack may differ in their knobs, which are padded).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mqarkit.gpu.frontier.protocol import KnobValue

GENERIC = "module"  # the family name of a plain nn.Module mixer (``mixer = ...``)
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # "package.module:Class"


# the topologies: ``layers`` -> what it means (the error for a bad value quotes this table)
LAYERS = {
    "hybrid": "block 0 a short BaseConv, block 1 the mixer",
    "mixer": "the mixer in both blocks, each with its own parameters",
}


def is_import_path(name: str) -> bool:
    return bool(IMPORT_PATH.match(name))


@dataclass(frozen=True, init=False)
class ModelConfig:
    """One run's architecture; ``ModelConfig("based", 64, feature_dim=16)``: the family's knobs as keywords."""

    family: str
    d_model: int
    vocab_size: int
    max_len: int
    knobs: tuple[tuple[str, KnobValue], ...]
    mixer: str | None
    mixer_kwargs: str  # canonical JSON of a dict
    mixer_cache: str | None
    conv_kernel: int
    tie_head: bool
    layers: str

    def __init__(
        self,
        family: str,
        d_model: int,
        *,
        vocab_size: int = 8192,
        max_len: int = 1024,
        knobs: Mapping[str, KnobValue] | tuple[tuple[str, KnobValue], ...] = (),
        mixer: str | None = None,
        mixer_kwargs: Mapping[str, Any] | str | None = None,
        mixer_cache: str | None = None,
        conv_kernel: int = 3,
        tie_head: bool = True,
        layers: str = "hybrid",
        **more_knobs: KnobValue,
    ):
        all_knobs = {**dict(knobs), **more_knobs}
        if isinstance(mixer_kwargs, str):
            mixer_kwargs = json.loads(mixer_kwargs)
        values = {
            "family": family,
            "d_model": d_model,
            "vocab_size": vocab_size,
            "max_len": max_len,
            "knobs": tuple(sorted(all_knobs.items())),
            "mixer": mixer,
            "mixer_kwargs": json.dumps(dict(mixer_kwargs or {}), sort_keys=True),
            "mixer_cache": mixer_cache,
            "conv_kernel": conv_kernel,
            "tie_head": tie_head,
            "layers": layers,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # ---------------------------------------------------------------- views
    def knob_dict(self) -> dict[str, KnobValue]:
        return dict(self.knobs)

    def kwargs(self) -> dict[str, Any]:
        """The plain module's keyword arguments (``mixer_kwargs``) as a dict."""
        return json.loads(self.mixer_kwargs)

    def stack_key(self) -> tuple:
        """Runs with equal keys can share one stack (they may differ in knobs, lr and seed)."""
        key = (self.family, self.d_model, self.vocab_size, self.max_len, self.conv_kernel, self.tie_head, self.layers)
        return key + ((self.mixer, self.mixer_kwargs, self.mixer_cache) if self.mixer else ())

    def label(self) -> str:
        """The architecture's part of a run id: ``based-d64-f16``, ``MyMixer-d32-expand2``, ``attention-d64-k4``,
        ``mamba-d64-n16-mixer2`` (``layers = "mixer"``: the mixer in both blocks)."""
        from mqarkit.gpu.frontier.families import family_class

        if self.mixer:
            name = self.mixer.split(":")[1]
            kwargs = "".join(f"-{k}{_compact(v)}" for k, v in sorted(self.kwargs().items()))
            if len(kwargs) > 48:  # long argument lists are named by their hash
                kwargs = "-kw" + hashlib.sha256(self.mixer_kwargs.encode()).hexdigest()[:10]
            knobs = kwargs
        else:
            cls = family_class(self.family)
            name = cls.__name__ if is_import_path(self.family) else self.family
            tags = {k.name: k.tag for k in cls.knobs}
            knobs = "".join(f"-{tags.get(k, k)}{_compact(v)}" for k, v in self.knobs)
        kernel = "" if self.conv_kernel == 3 else f"-k{self.conv_kernel}"
        tie = "" if self.tie_head else "-untied"
        layers = "" if self.layers == "hybrid" else "-mixer2"
        return f"{name}-d{self.d_model}{knobs}{kernel}{tie}{layers}"

    def to_dict(self) -> dict[str, Any]:
        """A record's ``model`` field: the fields, the knobs flattened in (``"window": 64``), kwargs as a dict."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "knobs"}
        out["mixer_kwargs"] = self.kwargs()
        return out | self.knob_dict()

    # ---------------------------------------------------------------- rules
    def validate(self) -> None:
        """Every rule of the trunk, then the mixer's own (a family's knobs; a module's import path and arguments)."""
        from mqarkit.gpu.frontier.families import family_class

        for name in ("d_model", "vocab_size", "max_len", "conv_kernel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}={value!r}: needs an integer")
        if self.d_model < 1:
            raise ValueError(f"d_model={self.d_model}: needs d_model >= 1")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size={self.vocab_size}: needs vocab_size >= 2")
        if self.max_len < 2:
            raise ValueError(f"max_len={self.max_len}: needs max_len >= 2")
        if self.conv_kernel < 1:
            raise ValueError(f"conv_kernel={self.conv_kernel}: needs conv_kernel >= 1")
        if not isinstance(self.tie_head, bool):
            raise ValueError(f"tie_head={self.tie_head!r}: needs true or false")
        self._check_layers()
        if self.mixer is not None:
            from mqarkit.gpu.frontier.user_mixers import check_module_config

            if self.family != GENERIC:
                raise ValueError(f"mixer={self.mixer!r}: a plain module's family is {GENERIC!r}, not {self.family!r}")
            if self.knobs:
                raise ValueError(f"{self.knobs[0][0]}: a plain module takes mixer_kwargs, not knobs")
            check_module_config(self.mixer, self.kwargs(), self.mixer_cache, self.d_model)
            return
        if self.family == GENERIC:
            raise ValueError(f"family={GENERIC!r}: needs mixer = 'package.module:Class'")
        if self.mixer_cache is not None or self.kwargs():
            raise ValueError(
                f"mixer_kwargs / mixer_cache: only a plain module (mixer = ...) takes them, not {self.family!r}"
            )
        family_class(self.family).check_knobs(self.d_model, self.max_len, self.knob_dict())

    def _check_layers(self) -> None:
        """``layers`` one of :data:`LAYERS`; ``"mixer"`` only for a family (a plain module is one model per run, built
        once), and without ``conv_kernel`` (block 0's short conv, which that topology does not have)."""
        if not isinstance(self.layers, str) or self.layers not in LAYERS:
            choices = "; ".join(f"{k!r} ({v})" for k, v in LAYERS.items())
            raise ValueError(f"layers={self.layers!r}: needs one of {choices}")
        if self.layers == "hybrid":
            return
        if self.mixer is not None:
            raise ValueError(f"layers={self.layers!r}: only a family (a StackedMixer) has it, not a plain module")
        if self.conv_kernel != 3:
            has = f"the short BaseConv of layers='hybrid'; layers={self.layers!r} has none"
            raise ValueError(f"conv_kernel={self.conv_kernel}: {has}")


def _compact(value: Any) -> str:
    """A knob or argument value as it appears in a run id (no spaces, no slashes)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":")) if not isinstance(value, str) else value
    return re.sub(r"[^\w.,:=+-]", "_", text)
