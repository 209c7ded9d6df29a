"""Argument checks of the core: each raises ``ValueError`` naming the parameter, its value and the rule.

The core's rule (design.md principle 10): a bad argument is a ``ValueError`` whose message starts with
``name=value:`` and states the constraint. A number of the wrong type is refused the same way (``must be an int (not a
bool)``), as ``MQARSpec`` always did; an object of the wrong kind (an ``rng``, a ``spec``, a ``batch``) is a
``TypeError``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

INT64_LIMIT = 2**63  # int64 arrays hold integers < 2**63


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int``: an integral number (not a bool) in ``[minimum, maximum]`` (either bound optional)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r}: must be an int, not a bool")
    if not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r}: must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={shown(value)}: must be >= {shown(minimum)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}={shown(value)}: must be <= {shown(maximum)}")
    return int(value)


def shown(value: int) -> str:
    """An int for a message: in full up to 24 digits, else its leading digits and length (``10**400`` has 401)."""
    text = str(int(value))
    return text if len(text.lstrip("-")) <= 24 else f"{text[:8]}... ({len(text.lstrip('-'))} digits)"


def check_real(
    name: str, value: object, *, minimum: float | None = None, maximum: float | None = None, finite: bool = True
) -> float:
    """``value`` as a ``float``: a real number (not a bool), not NaN, finite unless ``finite=False``, in
    ``[minimum, maximum]`` (either bound optional)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r}: must be a real number, got {type(value).__name__}")
    try:
        x = float(value)
    except OverflowError as err:
        raise ValueError(f"{name}={value}: too large for a float") from err
    if math.isnan(x) or (finite and math.isinf(x)):
        raise ValueError(f"{name}={value!r}: must be {'finite' if finite else 'a number (not NaN)'}")
    if minimum is not None and x < minimum:
        raise ValueError(f"{name}={value!r}: must be >= {minimum}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{name}={value!r}: must be <= {maximum}")
    return x


def check_bool(name: str, value: object) -> bool:
    """``value`` must be ``True`` or ``False`` (a NumPy bool too); a string such as ``'no'`` or ``None`` is refused
    instead of being read by its truth value."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r}: must be True or False, got {type(value).__name__}")
    return bool(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` must be one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r}: must be one of {tuple(choices)}")
    return value


def check_rng(rng: object) -> np.random.Generator:
    """``rng`` must be a ``numpy.random.Generator`` (randomness is always explicit; never a seed or the global RNG)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng: must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}"
        )
    return rng


def check_rows_in_int64(num_rows: int, row_span: int, *, what: str) -> None:
    """The vectorised per-row lookups (:func:`mqarkit.sampling.nth_allowed`, the oracle's key lookup) shift row ``b``
    by ``b * row_span`` inside one int64 array: ``num_rows * row_span`` must stay below ``2**63``."""
    if num_rows * row_span >= INT64_LIMIT:
        raise ValueError(
            f"{what}: {num_rows} rows x a span of {row_span} token ids overflow the int64 lookup "
            f"(needs rows * span < 2**63); use fewer examples at a time"
        )
