"""Any ``torch.nn.Module`` on the frontier: one model per run, trained through the same harness.

A sweep entry ``mixer = "package.module:Class"`` with ``mixer_kwargs = {...}`` names a module mapping ``(B, N, d) ->
(B, N, d)`` (its forward may also return a tuple whose first element is that tensor, as fla's layers do). The harness
builds one instance per run, ``Class(**mixer_kwargs)``, filling in what the reference harness passes too where the
constructor takes it and the keyword arguments do not set it: the width, as ``d_model`` (also through ``**kwargs``,
as the reference does) or else as ``hidden_size`` (fla's layers), and ``layer_idx = 1`` (the mixer's block). It puts
the module where the
mixer under test sits in the hybrid (:mod:`mqarkit.gpu.frontier.model`): same data, same loss at the query rows, same
optimiser, evaluation and records as the stacked families. :class:`ModuleMixer` holds the ``R`` instances of a stack
and runs them one after another (no stacking, no ``torch.compile``, no CUDA graph: a module may do anything).

Initialisation: a module's constructor draws from torch's global generator. Each instance is built inside
``torch.random.fork_rng``, seeded there with its run's seed: the run is reproducible, and the caller's global RNG state
is restored when the constructor returns.

Measured state (what the module carries in recurrent mode), in this order:

1. the module has a method ``recurrent_state(x)``: it gets ``x (1, N, d)`` and returns the carried tensors (a dict, a
   list or tuple, or one tensor); every number in them counts;
2. the module's forward takes ``past_key_values`` and ``use_cache`` (fla's layers, many Hugging Face layers): it is
   called once as ``module(x, past_key_values=cache, use_cache=True)`` with a fresh ``cache = CACHE()``, ``CACHE`` the
   entry's ``mixer_cache`` (default ``fla.models.utils:Cache``), and every tensor the cache then holds for the module's
   layer (``cache[module.layer_idx]``, the index taken as 0 where the module has none) counts;
3. otherwise the state is recorded as *unmeasured* (``state_numbers: null`` with the reason), never guessed. A module
   that reports its own size (``state_size(seq_len)``, as the reference's mixers do) has that number recorded
   beside it as ``state_reported_numbers``: a claim, not a measurement.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mqarkit.gpu.frontier.families import family_class, import_object
from mqarkit.gpu.frontier.ops import training_autocast
from mqarkit.gpu.frontier.protocol import StackedMixer

DEFAULT_CACHE = "fla.models.utils:Cache"
LAYER_INDEX = 1  # the mixer under test sits in block 1 of the hybrid


def module_class(path: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass at ``path``; a ``ValueError`` naming ``mixer`` otherwise."""
    cls = import_object(path, "mixer")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"mixer={path!r}: {cls!r} is not a torch.nn.Module subclass")
    if issubclass(cls, StackedMixer):
        raise ValueError(f"mixer={path!r}: a StackedMixer is a family: give it as family = {path!r}")
    return cls


def constructor_kwargs(cls: type[nn.Module], kwargs: Mapping[str, Any], d_model: int) -> dict[str, Any]:
    """``kwargs`` with the width and the layer index filled in (see the module docstring)."""
    params = inspect.signature(cls.__init__).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = dict(kwargs)
    if "d_model" not in out and "hidden_size" not in out:
        if "d_model" in params or (open_ended and "hidden_size" not in params):
            out["d_model"] = d_model
        elif "hidden_size" in params:
            out["hidden_size"] = d_model
    if "layer_idx" in params and "layer_idx" not in out:
        out["layer_idx"] = LAYER_INDEX
    return out


def check_module_config(path: str, kwargs: Mapping[str, Any], cache: str | None, d_model: int) -> None:
    """Import the module class, bind the keyword arguments to its constructor, import the cache class: every error
    a ``ValueError`` naming the field, before any training."""
    cls = module_class(path)
    full = constructor_kwargs(cls, kwargs, d_model)
    try:
        inspect.signature(cls.__init__).bind(None, **full)
    except TypeError as exc:
        raise ValueError(f"mixer_kwargs={dict(kwargs)!r}: {path} does not take them ({exc})") from exc
    if cache is not None:
        import_object(cache, "mixer_cache")


def build_module(path: str, kwargs: Mapping[str, Any], d_model: int, seed: int) -> nn.Module:
    """One instance, built with torch's global generator seeded with ``seed`` inside ``fork_rng`` (see the module
    docstring)."""
    cls = module_class(path)
    with torch.random.fork_rng(devices=[]):
        torch.random.manual_seed(seed)
        return cls(**constructor_kwargs(cls, kwargs, d_model))


def _tensors(value: object) -> list[torch.Tensor]:
    """Every tensor in a nest of dicts, lists and tuples (None and other leaves skipped)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def measure_module_state(module: nn.Module, x: torch.Tensor, cache: str | None) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors ``module`` carries after reading ``x (1, N, d)``, and how they were found (the forms of the module
    docstring); ``({}, reason)`` when the module exposes none. The module runs in the precision it trains in
    (:func:`~mqarkit.gpu.frontier.ops.training_autocast`: some kernels, fla's chunked delta rule among them, refuse
    float32); only the carried tensors' sizes are read."""
    with training_autocast(x.device):
        return _module_state(module, x, cache)


def _module_state(module: nn.Module, x: torch.Tensor, cache: str | None) -> tuple[dict[str, torch.Tensor], str]:
    if callable(getattr(module, "recurrent_state", None)):
        found = _tensors(module.recurrent_state(x))
        return {f"state{i}": t for i, t in enumerate(found)}, "recurrent_state()"
    params = inspect.signature(module.forward).parameters
    if "past_key_values" in params and "use_cache" in params:
        store = import_object(cache or DEFAULT_CACHE, "mixer_cache")()
        layer = getattr(module, "layer_idx", None)
        if layer is None:
            module.layer_idx = 0
        try:
            module(x, past_key_values=store, use_cache=True)
            found = _tensors(store[module.layer_idx])
        finally:
            if layer is None:
                module.layer_idx = None
        return {f"cache{i}": t for i, t in enumerate(found)}, f"past_key_values ({type(store).__name__})"
    return {}, "unmeasured: the module has neither recurrent_state() nor a past_key_values cache"


class ModuleMixer(StackedMixer):
    """The ``R`` plain modules of a stack (one per run), run one after another; see the module docstring."""

    name = "module"
    compilable = False
    graphable = False

    def __init__(
        self, d_model: int, max_len: int, seeds: list[int], path: str, kwargs: Mapping[str, Any], cache: str | None
    ):
        nn.Module.__init__(self)
        self.d, self.max_len, self.runs = d_model, max_len, len(seeds)
        self.run_knobs, self.run_shapes, self.padded, self.knob_buffers = [{} for _ in seeds], [], {}, {}
        self.path, self.cache = path, cache
        self.instances = nn.ModuleList(build_module(path, kwargs, d_model, s) for s in seeds)

    def _apply_one(self, run: int, u: torch.Tensor) -> torch.Tensor:
        out = self.instances[run](u)
        out = out[0] if isinstance(out, tuple | list) else out
        if not isinstance(out, torch.Tensor) or out.shape != u.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"mixer={self.path!r}: needs an output of the input's shape {tuple(u.shape)}, got {got}")
        return out

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._apply_one(r, u[r]) for r in range(self.runs)])

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        return self._apply_one(run, u)

    def parameter_runs(self) -> dict[str, int]:
        return {n: int(n.split(".")[1]) for n, _ in self.named_parameters()}

    def reported_state(self, run: int, seq_len: int) -> int | None:
        """What the module's own ``state_size(seq_len)`` says, if it has one (the reference's mixers do)."""
        report = getattr(self.instances[run], "state_size", None)
        return int(report(seq_len)) if callable(report) else None

    @torch.no_grad()
    def measure_state(self, run: int, u: torch.Tensor) -> tuple[dict[str, torch.Tensor], str]:
        """:func:`measure_module_state` of run ``run``'s module on ``u (N, d)``."""
        module = self.instances[run]
        was_training = module.training
        module.eval()
        try:
            return measure_module_state(module, u[None], self.cache)
        finally:
            module.train(was_training)


class FamilyReference(nn.Module):
    """A registered family's naive single-run form (:meth:`StackedMixer.reference`) as a plain ``nn.Module``
    ``(B, N, d) -> (B, N, d)``: the family's math through the generic one-model-per-run path, for comparing that path
    with the stacked one (``benchmarks/frontier_speed.py``). In a sweep: ``mixer =
    "mqarkit.gpu.frontier.user_mixers:FamilyReference"``, ``mixer_kwargs = {family = "attention", max_len = 1024}``
    (and ``knobs = {...}`` for a family that takes knobs).

    The parameters are the family's own initialisation (:meth:`StackedMixer.init_run`) for one run, from a generator
    seeded by a draw from torch's global generator, which :func:`build_module` seeds with the run's seed inside
    ``fork_rng``. Its state is the family's recurrent mode (``recurrent_state``).
    """

    def __init__(self, d_model: int, family: str, max_len: int, knobs: Mapping[str, Any] | None = None):
        super().__init__()
        seed = int(torch.randint(2**62, ()).item())
        cls = family_class(family)
        self.mixer = cls(d_model, max_len, [dict(knobs or {})], [torch.Generator().manual_seed(seed)])

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.mixer.reference(0, u)

    def recurrent_state(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The family's carried tensors after ``x (1, N, d)`` (the form :func:`measure_module_state` reads)."""
        return self.mixer.recurrent_state(0, x[0])
