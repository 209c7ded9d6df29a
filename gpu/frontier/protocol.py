"""The mixer protocol: what one trained family implements so that ``R`` runs of it train as one computation.

The frontier trains the hybrid of [B] Figure 2 (:mod:`mqarkit.gpu.frontier.model`): an embedding, a short BaseConv
block, then *the mixer under test*, then norms and a tied head. The harness owns everything but the mixer; a family
is one :class:`StackedMixer` subclass, registered by name in :mod:`mqarkit.gpu.frontier.families` (or named by import
path, ``"package.module:Class"``, for a user's own family). The page ``docs/mixer_protocol.md`` walks through it.

Stacked runs. Every parameter of a family carries a leading run dimension ``R``. The runs of one stack share the
family, ``d_model`` and ``max_len``, and may differ in their **knobs** (:class:`Knob`: the feature dimension of Based,
the window of a sliding window, ...), which may change parameter shapes. Each run is initialised at its own unpadded
shape (:meth:`StackedMixer.init_run`, from the run's own ``torch.Generator``, so a run never depends on its
stack-mates); the base class zero-pads every tensor to the stack's largest shape (at the end of each axis) and keeps,
for each parameter whose shape differs between runs, a 0/1 mask of the real entries. A family reads such a parameter
through :meth:`StackedMixer.masked` (the parameter times its mask), so the padded part contributes nothing and gets
exactly zero gradient; the optimiser also multiplies its updates by :meth:`StackedMixer.gradient_masks`, so the padded
part stays exactly zero. A knob whose value matters beyond shapes (a window, a scale) reaches the forward through
:meth:`StackedMixer.knob_tensor`, an ``(R,)`` tensor.

What a family implements (shapes: ``u (R, B, N, d)`` is layer 1's input, the output has the same shape):

- ``name`` and ``knobs`` (class attributes), :meth:`check` for rules beyond the knobs' own (called before any work);
- :meth:`init_run`: one run's parameters at its unpadded shape, drawn from the generator given;
- :meth:`forward`: the whole sequence, fast (stacked; on CUDA it may call Triton kernels);
- :meth:`forward_at` (optional): the output at the query rows ``qpos (B, D)`` only, ``(R, B, D, d)``, where the family
  has a cheaper form (attention: ``D`` queries against ``N`` keys); the default computes :meth:`forward` and gathers;
- :meth:`reference`: one run, whole sequence, the naive form in plain torch (``(B, N, d) -> (B, N, d)``), written from
  the run's unpadded parameters (:meth:`run_parameters`): the fast path is tested against it;
- :meth:`step`: recurrent mode, one token at a time for one run: ``(u_t (B, d), state) -> (y_t (B, d), state)`` with
  ``state`` a dict of tensors (``None`` before the first token). The **measured state** of a run is every number these
  tensors hold after the whole sequence (:meth:`recurrent_state`); the tests check that stepping reproduces the
  forward, so the carried tensors are all the mixer needs;
- :meth:`state_formula`: the closed form of that count, from ``d_model``, ``max_len``, the knobs and the length
  (tests compare);
- :meth:`intermediate_elements` (optional): the largest intermediate per example, for micro-batching.

Depth. A family is layer 1 of the hybrid (``layers = "hybrid"``, the default) or, under ``layers = "mixer"``
(:class:`~mqarkit.gpu.frontier.config.ModelConfig`), both layers: the model then builds two instances, ``layer = 0``
and ``layer = 1``, each with its own parameters drawn from the run's generator. ``block_type`` (class attribute)
names the block the reference wraps the family in under ``layers = "mixer"`` (:data:`BLOCK_TYPES`: ``"transformer"``,
Zoology's ``TransformerBlock``; ``"mamba"``, its ``MambaBlock``); ``layer_init`` says that :meth:`init_run` takes a
keyword ``layer`` (the block's index) because the family's initialisation depends on its depth (RWKV-4's does). A
family that overrides ``__init__`` passes the keyword ``layer`` on to this class's (the model gives it under
``layers = "mixer"`` only).

Class flags: ``compilable`` (the harness may run :meth:`forward_at` under ``torch.compile``), ``graphable`` (a whole
training step may be captured as one CUDA graph; the family then must not synchronise with the host),
``keeps_float32_input`` (the trunk hands ``u`` over in float32 rather than the autocast dtype: for a family whose
output adds ``u`` itself), ``evaluates_with_training_graph`` (a compiled family's evaluation records autograd, so
that it calls the function training compiled instead of compiling an inference variant: ``train.evaluate``; off for a
family whose evaluation at the test lengths would then hold more than memory allows).

State policy (one for every family, the unit of the records is float32 numbers): every tensor the recurrent mode
carries counts (conv caches, KV caches, normalisers such as Based's ``z``); parameters do not. A step carries only
what a later step reads: a filter of ``k`` taps keeps the last ``k − 1`` inputs (the current one arrives with the
step), a window of ``w`` keys (itself included) the last ``w − 1`` pairs, as the construction wing's mixers do
(``docs/results/golden_state.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mqarkit.gpu.frontier.ops import gather_rows

KnobValue = int | float | bool | str
BLOCK_TYPES = ("transformer", "mamba")  # the blocks a family may name as ``block_type`` (model.py builds both)


@dataclass(frozen=True)
class Knob:
    """A per-run knob of a family: its name, the tag that names it in run ids (``-f16`` for ``feature_dim = 16``) and
    its rule (an integer ``>= minimum``, unless ``kind`` says otherwise)."""

    name: str
    tag: str
    minimum: int = 1
    kind: type = int
    help: str = ""

    def check(self, value: object) -> None:
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
                raise ValueError(f"{self.name}={value!r}: needs an integer {self.name} >= {self.minimum}")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{self.name}={value!r}: needs a finite number")
        elif not isinstance(value, self.kind):
            raise ValueError(f"{self.name}={value!r}: needs a {self.kind.__name__}")


class StackedMixer(nn.Module):
    """One layer (layer 1 of the hybrid; either layer under ``layers = "mixer"``) for ``R`` runs of one family,
    stacked; see the module docstring for the protocol.

    ``StackedMixer(d_model, max_len, knobs, generators, layer=1)``: ``knobs`` one dict per run (the family's knobs,
    checked), ``generators`` one ``torch.Generator`` per run (each run's parameters are drawn from its own), ``layer``
    the block's index (0 or 1; it reaches :meth:`init_run` only for a family with ``layer_init``).
    """

    name: ClassVar[str] = ""
    knobs: ClassVar[tuple[Knob, ...]] = ()
    compilable: ClassVar[bool] = True
    graphable: ClassVar[bool] = True
    keeps_float32_input: ClassVar[bool] = False
    evaluates_with_training_graph: ClassVar[bool] = True
    block_type: ClassVar[str] = "transformer"
    layer_init: ClassVar[bool] = False

    def __init__(
        self,
        d_model: int,
        max_len: int,
        knobs: list[dict[str, KnobValue]],
        generators: list[torch.Generator],
        *,
        layer: int = 1,
    ):
        super().__init__()
        if not knobs or len(knobs) != len(generators):
            raise ValueError(f"knobs, generators: need one entry per run each, got {len(knobs)} and {len(generators)}")
        if layer not in (0, 1):
            raise ValueError(f"layer={layer!r}: needs 0 or 1 (the block of the two-layer model)")
        if type(self).block_type not in BLOCK_TYPES:
            kind = f"{type(self).__name__}.block_type={type(self).block_type!r}"
            raise ValueError(f"{kind}: needs one of {', '.join(BLOCK_TYPES)}")
        for run_knobs in knobs:
            type(self).check_knobs(d_model, max_len, run_knobs)
        self.d, self.max_len, self.runs, self.layer = d_model, max_len, len(knobs), layer
        self.run_knobs = [dict(k) for k in knobs]
        at = {"layer": layer} if type(self).layer_init else {}
        per_run = [type(self).init_run(d_model, max_len, k, g, **at) for k, g in zip(knobs, generators)]
        names = list(per_run[0])
        if any(list(p) != names for p in per_run):
            raise ValueError(f"{type(self).__name__}.init_run: every run needs the same parameter names")
        self.run_shapes = [{n: tuple(p[n].shape) for n in names} for p in per_run]
        self.padded: dict[str, str] = {}  # parameter name -> the name of its 0/1 mask buffer
        for n in names:
            dims = {p[n].dim() for p in per_run}
            if len(dims) != 1:
                raise ValueError(f"{type(self).__name__}.init_run: parameter {n!r} changes its number of axes")
            shape = tuple(max(s) for s in zip(*(p[n].shape for p in per_run)))
            padded = [F.pad(p[n], _end_padding(p[n].shape, shape)) for p in per_run]
            self.register_parameter(n, nn.Parameter(torch.stack(padded)))
            if any(tuple(p[n].shape) != shape for p in per_run):
                self.padded[n] = f"mask_{n}"
                self.register_buffer(self.padded[n], torch.stack([_extent_mask(p[n].shape, shape) for p in per_run]))
        # numeric knobs as (R,) buffers, so that forwards read them without a host-to-device copy (CUDA graphs)
        self.knob_buffers: dict[str, str] = {}  # knob name -> buffer name
        for knob in self.knobs:
            if knob.kind in (int, float):
                self.knob_buffers[knob.name] = f"knob_{knob.name}"
                dtype = torch.int64 if knob.kind is int else torch.float32
                values = torch.tensor([k[knob.name] for k in self.run_knobs], dtype=dtype)
                self.register_buffer(self.knob_buffers[knob.name], values)

    # ---------------------------------------------------------------- what a family implements
    @classmethod
    def check(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue]) -> None:
        """Rules beyond each knob's own (e.g. a width divisible by a head size); raise ``ValueError`` naming them."""

    @classmethod
    def init_run(
        cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """One run's parameters at its own (unpadded) shapes, drawn from ``generator`` in a fixed order (a family with
        ``layer_init`` takes a keyword ``layer`` too)."""
        raise NotImplementedError

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``u (R, B, N, d)`` -> ``(R, B, N, d)``: every run on the whole sequence."""
        raise NotImplementedError

    def forward_at(self, u: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
        """``u (R, B, N, d)``, ``qpos (B, D)`` -> ``(R, B, D, d)``: the output at the query rows (default: gather)."""
        return gather_rows(self(u), qpos)

    def reference(self, run: int, u: torch.Tensor) -> torch.Tensor:
        """Run ``run`` alone, naive, in plain torch: ``u (B, N, d)`` -> ``(B, N, d)``."""
        raise NotImplementedError

    def step(
        self, run: int, u_t: torch.Tensor, state: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Recurrent mode of run ``run``: ``u_t (B, d)`` and the carried state (None at the start) -> ``y_t (B, d)``
        and the new state."""
        raise NotImplementedError

    @classmethod
    def state_formula(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue], seq_len: int) -> int:
        """The number of values :meth:`step` carries after ``seq_len`` tokens, in closed form."""
        raise NotImplementedError

    def intermediate_elements(self, seq_len: int) -> int:
        """Elements of the largest intermediate per example over all runs (micro-batching keeps it in budget)."""
        return self.runs * seq_len * seq_len

    def parameter_runs(self) -> dict[str, int]:
        """Parameters that belong to one run only (no leading run axis), by name: their run. Stacked families: none."""
        return {}

    # ---------------------------------------------------------------- provided
    @classmethod
    def check_knobs(cls, d_model: int, max_len: int, knobs: Mapping[str, KnobValue]) -> None:
        """Every declared knob present and valid, no other knob, then :meth:`check`."""
        declared = {k.name: k for k in cls.knobs}
        unknown = sorted(set(knobs) - set(declared))
        if unknown:
            takes = ", ".join(declared) or "no knobs"
            raise ValueError(f"{unknown[0]}={knobs[unknown[0]]!r}: family {cls.name!r} takes {takes}")
        for name, knob in declared.items():
            if name not in knobs:
                raise ValueError(f"{name}: family {cls.name!r} needs {name} ({knob.help or knob.kind.__name__})")
            knob.check(knobs[name])
        cls.check(d_model, max_len, knobs)

    def masked(self, name: str) -> torch.Tensor:
        """Parameter ``name`` with its padded entries multiplied by 0 (so they get no gradient either)."""
        p = self.get_parameter(name)
        return p * self.get_buffer(self.padded[name]) if name in self.padded else p

    def gradient_masks(self) -> dict[str, torch.Tensor]:
        """0/1 masks of the real entries, by parameter name, for the parameters whose shape differs between runs."""
        return {n: self.get_buffer(b) for n, b in self.padded.items()}

    def knob_tensor(self, name: str) -> torch.Tensor:
        """The numeric knob ``name`` of every run: an ``(R,)`` buffer (int64 for integer knobs, else float32)."""
        return self.get_buffer(self.knob_buffers[name])

    def run_parameters(self, run: int) -> dict[str, torch.Tensor]:
        """Run ``run``'s parameters at its own shapes (views of the stacked ones: gradients flow back)."""
        if not 0 <= run < self.runs:
            raise ValueError(f"run={run}: needs 0 <= run < {self.runs}")
        out = {}
        for name, shape in self.run_shapes[run].items():
            t = self.get_parameter(name)[run]
            out[name] = t[tuple(slice(0, s) for s in shape)]
        return out

    @torch.no_grad()
    def recurrent_state(self, run: int, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tensors run ``run`` carries after reading ``u (N, d)`` (one example) in recurrent mode."""
        state = None
        for t in range(u.shape[0]):
            _, state = self.step(run, u[None, t], state)
        return {k: v[0] for k, v in (state or {}).items()}  # drop the batch axis of one example

    def measure_state(self, run: int, u: torch.Tensor) -> tuple[dict[str, torch.Tensor], str]:
        """The carried tensors after ``u (N, d)`` and how they were found (for the records)."""
        return self.recurrent_state(run, u), "recurrent mode"

    def reported_state(self, run: int, seq_len: int) -> int | None:
        """A state size the mixer reports of itself (a claim, recorded beside the measurement); None: none."""
        return None


def _end_padding(shape: torch.Size, target: tuple[int, ...]) -> tuple[int, ...]:
    """``F.pad``'s argument that pads ``shape`` with zeros at the end of each axis up to ``target``."""
    pad: list[int] = []
    for have, want in zip(reversed(shape), reversed(target)):
        pad += [0, want - have]
    return tuple(pad)


def _extent_mask(shape: torch.Size, target: tuple[int, ...]) -> torch.Tensor:
    """A ``target``-shaped float 0/1 tensor: 1 on the leading ``shape`` block."""
    mask = torch.zeros(target)
    mask[tuple(slice(0, s) for s in shape)] = 1
    return mask
