"""The construction API shared by every construction (attention family and BaseConv family).

A construction is explicit weights that solve MQAR, for given sizes, together with the resources it *claims* as
closed-form functions of the sizes. Users reach constructions through :func:`build`::

    from mqarkit.constructions import build, names
    con = build("attention_onehot", vocab_size=64, seq_len=32, num_kv_pairs=4)
    predictions = con.predict(batch.inputs)          # (n, N) int64 next-token predictions at every position
    report = con.resources()                         # claimed vs measured (from the model itself)

Writing a construction: subclass :class:`Construction` in a module of this folder, set ``name`` and ``claim_ids``,
implement ``validate_sizes``, ``claimed_resources``, ``claimed_range``, ``_build_model`` and ``_predict`` (and
``claimed_range_violation`` where some valid knobs lie outside the claimed range), and decorate the class with
:func:`register`. Modules of this folder are discovered automatically (every public module is imported the first
time the registry is read).

What :func:`build` refuses (``ValueError`` / ``TypeError`` naming the parameter): sizes that are not ints, sizes and
knobs the construction cannot be built at (``validate_sizes``), sizes and knobs it can be built at but does not claim
to solve MQAR at (``claimed_range_violation``; e.g. ``attention_signcode`` below its proven ``beta``) unless
``outside_claimed_range=True`` asks for them (to show where a construction fails), and sizes whose weights alone
(``claimed_resources(...).parameters`` entries of 8 bytes) exceed the memory available (``TooLargeError``).

Glossary (theory.md): ``c`` = ``vocab_size``, ``N`` = ``seq_len`` (raw tokens), ``D`` = ``num_kv_pairs``.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, ClassVar

import numpy as np

from mqarkit.checks import check_bool
from mqarkit.memory import check_memory

BACKENDS = ("float64", "exact", "symbolic")
BYTES_PER_NUMBER = 8  # int64 / float64 weights and stream states


@dataclass(frozen=True)
class Resources:
    """Resources of one construction at one size.

    layers:        number of sequence-mixing layers (BaseConv / attention / linear-attention layers);
    width:         widest residual stream / channel count a layer works on;
    parameters:    number of weight entries, counted as stored (dense matrices count every entry);
    state_numbers: numbers the recurrent form carries from one step to the next at this ``seq_len`` (the policy is
                   the one of ``mqarkit.polynomials`` analysis: KV caches, linear-attention ``S`` and ``z``,
                   convolution caches of length ``k - 1`` per channel);
    degree:        polynomial degree of the output in the input encoding, or ``None`` for non-polynomial models;
    nonzero_parameters: weight entries that are not zero, i.e. what a sparse / structured parameterisation stores
                   (erratum 9: a dense ``W`` of a width-``d`` stream costs ``d^2`` whatever its structure). ``None``
                   where a construction does not state it; where it does, the claim is a closed form and the
                   measurement counts the model's weights (:func:`count_nonzero_parameters`).
    """

    layers: int
    width: int
    parameters: int
    state_numbers: int
    degree: int | None = None
    nonzero_parameters: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)

    @classmethod
    def from_analysis(cls, analysis: Any, degree: int | None) -> Resources:
        """Layers, width, parameters and state read off a ``mqarkit.polynomials.analyse`` result; ``degree`` as the
        caller measures it (the analysis' bound, or the weights' supports)."""
        return cls(
            layers=int(analysis.layers),
            width=int(analysis.width),
            parameters=int(analysis.parameters),
            state_numbers=int(analysis.state_numbers),
            degree=degree,
        )


@dataclass(frozen=True)
class ResourceReport:
    claimed: Resources
    measured: Resources

    def mismatches(self) -> dict[str, tuple[Any, Any]]:
        """Fields where the claimed value differs from the measured one: ``{field: (claimed, measured)}``."""
        out = {}
        for f in fields(Resources):
            c, m = getattr(self.claimed, f.name), getattr(self.measured, f.name)
            if c is not None and c != m:
                out[f.name] = (c, m)
        return out


class Construction(ABC):
    """Explicit weights solving MQAR at fixed sizes. Subclasses are registered with :func:`register`."""

    name: ClassVar[str]
    claim_ids: ClassVar[tuple[str, ...]] = ()
    exact_backends: ClassVar[tuple[str, ...]] = BACKENDS  # backends under which predict is exact

    def __init__(
        self, *, vocab_size: int, seq_len: int, num_kv_pairs: int, outside_claimed_range: bool = False, **knobs: Any
    ) -> None:
        cls = type(self)
        self.within_claimed_range = cls.check_request(
            vocab_size=vocab_size,
            seq_len=seq_len,
            num_kv_pairs=num_kv_pairs,
            outside_claimed_range=outside_claimed_range,
            **knobs,
        )
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        self.num_kv_pairs = int(num_kv_pairs)
        self.knobs = dict(knobs)
        claimed = self._claimed()
        check_memory(
            BYTES_PER_NUMBER * claimed.parameters,
            parameter=f"vocab_size={vocab_size}, seq_len={seq_len}, num_kv_pairs={num_kv_pairs}"
            + "".join(f", {k}={v!r}" for k, v in knobs.items()),
            what=f"the {claimed.parameters} weight entries of {cls.name!r} (claimed_resources(...).parameters)",
        )
        self.model = self._build_model()

    @classmethod
    def check_request(
        cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, outside_claimed_range: bool = False, **knobs: Any
    ) -> bool:
        """Every rule :func:`build` applies before building (module docstring) except memory; returns whether the
        request lies inside the claimed range (it can lie outside only with ``outside_claimed_range=True``)."""
        for field_name, value in (("vocab_size", vocab_size), ("seq_len", seq_len), ("num_kv_pairs", num_kv_pairs)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{field_name}={value!r}: must be an int")
        outside = check_bool("outside_claimed_range", outside_claimed_range)
        sizes = {"vocab_size": vocab_size, "seq_len": seq_len, "num_kv_pairs": num_kv_pairs}
        cls.validate_sizes(**sizes, **knobs)
        violation = cls.claimed_range_violation(**sizes, **knobs)
        if violation is not None and not outside:
            raise ValueError(
                f"{violation}; that is outside the claimed range of {cls.name!r} ({cls.claimed_range()}); pass "
                "outside_claimed_range=True to build it anyway (e.g. to show where it fails)"
            )
        return violation is None

    @classmethod
    def claimed_range_violation(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> str | None:
        """For sizes and knobs that pass ``validate_sizes``: why they lie outside :meth:`claimed_range` (naming the
        parameter and the rule), or ``None``. Default: every valid request is inside."""
        return None

    def _claimed(self) -> Resources:
        return type(self).claimed_resources(
            vocab_size=self.vocab_size, seq_len=self.seq_len, num_kv_pairs=self.num_kv_pairs, **self.knobs
        )

    # --- what a subclass provides -------------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def validate_sizes(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> None:
        """Raise ``ValueError`` naming the parameter and the rule when the sizes/knobs are outside the claimed range.

        Unknown knobs must raise too."""

    @classmethod
    @abstractmethod
    def claimed_resources(cls, *, vocab_size: int, seq_len: int, num_kv_pairs: int, **knobs: Any) -> Resources:
        """Closed-form resources at these sizes (no weights are built: usable on large grids)."""

    @classmethod
    @abstractmethod
    def claimed_range(cls) -> str:
        """Human-readable statement of the sizes over which the construction claims to solve MQAR."""

    @abstractmethod
    def _build_model(self) -> Any:
        """The operator-IR model (``mqarkit.polynomials``) with exact weights."""

    @abstractmethod
    def _predict(self, inputs: np.ndarray, backend: str) -> np.ndarray:
        """``inputs`` (n, N) int64 raw tokens -> (n, N) int64 argmax next-token predictions at every position."""

    @abstractmethod
    def measured_resources(self) -> Resources:
        """Resources read off ``self.model`` (layers, widths and parameters counted from the weights, state from the
        IR's analysis), never from the closed-form formulas."""

    # --- shared behaviour ----------------------------------------------------------------------------------------
    def predict(self, inputs: np.ndarray, backend: str = "float64") -> np.ndarray:
        """Argmax next-token prediction at every position: ``inputs`` (n, N) int -> (n, N) int64."""
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: must be one of {BACKENDS}")
        if backend not in self.exact_backends and backend != "float64":
            raise ValueError(
                f"backend={backend!r}: construction {self.name!r} uses non-polynomial operators and supports "
                f"{('float64', *self.exact_backends)}"
            )
        arr = np.asarray(inputs)
        if arr.ndim != 2 or arr.shape[1] != self.seq_len:
            raise ValueError(f"inputs: shape {arr.shape} must be (n, seq_len={self.seq_len})")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"inputs: dtype {arr.dtype} must be an integer dtype (token ids)")
        width = self._claimed().width
        check_memory(
            BYTES_PER_NUMBER * arr.shape[0] * arr.shape[1] * width,
            parameter=f"inputs.shape={arr.shape}",
            what=f"the float64 stream states (width {width}) of {self.name!r} on these inputs",
        )
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(f"inputs: token ids must lie in [0, vocab_size={self.vocab_size})")
        return np.asarray(self._predict(arr.astype(np.int64), backend), dtype=np.int64)

    def resources(self) -> ResourceReport:
        return ResourceReport(claimed=self._claimed(), measured=self.measured_resources())

    def __repr__(self) -> str:
        knobs = "".join(f", {k}={v!r}" for k, v in self.knobs.items())
        knobs += "" if self.within_claimed_range else ", outside_claimed_range=True"
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, seq_len={self.seq_len}, "
            f"num_kv_pairs={self.num_kv_pairs}{knobs})"
        )


def check_construction(value: object, name: str = "construction") -> Construction:
    """``value`` must be a :class:`Construction` (what :func:`build` returns)."""
    if not isinstance(value, Construction):
        raise TypeError(
            f"{name}: must be a Construction (mqarkit.constructions.build(...)), got {type(value).__name__}"
        )
    return value


def count_nonzero_parameters(model: Any) -> int:
    """Non-zero entries of every weight array held by the model's ops (fields that are NumPy arrays).

    The model is an ``mqarkit.polynomials.Model``: its ``layers`` hold frozen-dataclass ops whose array fields are the
    weights (projections, filters, biases, positional biases).
    """
    total = 0
    for layer in model.layers:
        op = layer.op
        if not is_dataclass(op):
            raise TypeError(f"layer op {type(op).__name__}: expected an IR op (a dataclass)")
        for f in fields(op):
            value = getattr(op, f.name)
            if isinstance(value, np.ndarray):
                total += int(np.count_nonzero(value != 0))
    return total


_REGISTRY: dict[str, type[Construction]] = {}
_DISCOVERED = False


def register(cls: type[Construction]) -> type[Construction]:
    """Class decorator: make a construction reachable through :func:`build`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__}: a registered construction needs a non-empty `name`")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"construction name {name!r} is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
    _REGISTRY[name] = cls
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    import mqarkit.constructions as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_") and info.name != "api":
            importlib.import_module(f"{package.__name__}.{info.name}")
    _DISCOVERED = True


def names() -> list[str]:
    """Names of every registered construction, sorted."""
    _discover()
    return sorted(_REGISTRY)


def construction_class(name: str) -> type[Construction]:
    _discover()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"name={name!r}: unknown construction; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build(
    name: str, *, vocab_size: int, seq_len: int, num_kv_pairs: int, outside_claimed_range: bool = False, **knobs: Any
) -> Construction:
    """Build construction ``name`` at these sizes. Raises ``ValueError`` (or ``TypeError``) naming the parameter
    outside its claimed range, unless ``outside_claimed_range=True`` (module docstring), and ``TooLargeError`` (a
    ``ValueError`` and a ``MemoryError``) when its weights cannot fit in memory."""
    return construction_class(name)(
        vocab_size=vocab_size,
        seq_len=seq_len,
        num_kv_pairs=num_kv_pairs,
        outside_claimed_range=outside_claimed_range,
        **knobs,
    )


def claimed_resources(
    name: str, *, vocab_size: int, seq_len: int, num_kv_pairs: int, outside_claimed_range: bool = False, **knobs: Any
) -> Resources:
    """Closed-form claimed resources of ``name`` at these sizes, validated as :func:`build` validates them, without
    building weights (so at any size: no memory check)."""
    cls = construction_class(name)
    cls.check_request(
        vocab_size=vocab_size,
        seq_len=seq_len,
        num_kv_pairs=num_kv_pairs,
        outside_claimed_range=outside_claimed_range,
        **knobs,
    )
    return cls.claimed_resources(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, **knobs)
