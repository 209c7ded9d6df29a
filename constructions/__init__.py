"""Explicit weight constructions that solve MQAR, each with its claimed resources.

``build(name, *, vocab_size, seq_len, num_kv_pairs, **knobs)`` makes one; ``names()`` lists them.
"""

from mqarkit.constructions.api import (
    Construction,
    ResourceReport,
    Resources,
    build,
    check_construction,
    claimed_resources,
    construction_class,
    count_nonzero_parameters,
    names,
    register,
)
from mqarkit.constructions.sliding_window import predicted_sliding_window_accuracy

__all__ = [
    "Construction",
    "ResourceReport",
    "Resources",
    "build",
    "check_construction",
    "claimed_resources",
    "construction_class",
    "count_nonzero_parameters",
    "names",
    "predicted_sliding_window_accuracy",
    "register",
]
