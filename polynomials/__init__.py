"""The operator IR: polynomial operators evaluated symbolically (sympy), exactly (rationals) and in float64.

Importing this package loads neither torch nor sympy (sympy is imported lazily by the symbolic backend, the
sequence-polynomial helpers and the circuit tools).

- encodings: ``OneHot``, ``BinaryCode``, ``SignCode``, ``PHot``;
- the stream and models: ``Stream``, ``Layer``, ``Model``;
- ops: ``Linear``, ``CausalConv``, ``CyclicConv``, ``BaseConv``, ``SoftmaxAttention``, ``UnnormalisedAttention``,
  ``LinearAttention`` (feature maps ``IdentityMap``, ``TaylorMap``), ``DeltaRule``, ``ArgmaxReadout``;
- evaluation: ``evaluate`` (backends ``float64`` / ``exact`` / ``symbolic``), ``embed``, ``read``, ``NotExactError``;
- analysis: ``analyse`` -> ``ModelAnalysis``, ``output_degree``;
- sequence polynomials (``seqpoly``) and arithmetic circuits (``circuits``, ``compile_to_baseconv``).
"""

from .analysis import ModelAnalysis, analyse, degree_bounds, generic_input, output_degree
from .attention import SoftmaxAttention, UnnormalisedAttention
from .baseconv import BaseConv
from .circuit_compiler import compile_to_baseconv
from .circuits import Circuit, CircuitBuilder, circuits, random_circuit
from .conv import CausalConv, CyclicConv
from .delta_rule import DeltaRule
from .encodings import BinaryCode, OneHot, PHot, SignCode
from .evaluate import BACKEND_NAMES, embed, evaluate, read
from .feature_maps import IdentityMap, TaylorMap
from .linear import Linear
from .linear_attention import LinearAttention, linear_attention_recurrent
from .masks import MASKS
from .model import Layer, Model
from .op_base import Op
from .readout import ArgmaxReadout
from .seqpoly import (
    causal_conv_identity,
    cyclic_conv_identity,
    gating_identity,
    hadamard,
    shift_identity,
    shift_up_identity,
    to_polynomial,
)
from .stream import Stream
from .weights import NotExactError

__all__ = [
    "BACKEND_NAMES",
    "MASKS",
    "ArgmaxReadout",
    "BaseConv",
    "BinaryCode",
    "CausalConv",
    "Circuit",
    "CircuitBuilder",
    "CyclicConv",
    "DeltaRule",
    "IdentityMap",
    "Layer",
    "Linear",
    "LinearAttention",
    "Model",
    "ModelAnalysis",
    "NotExactError",
    "OneHot",
    "Op",
    "PHot",
    "SignCode",
    "SoftmaxAttention",
    "Stream",
    "TaylorMap",
    "UnnormalisedAttention",
    "analyse",
    "causal_conv_identity",
    "circuits",
    "compile_to_baseconv",
    "cyclic_conv_identity",
    "degree_bounds",
    "embed",
    "evaluate",
    "gating_identity",
    "generic_input",
    "hadamard",
    "linear_attention_recurrent",
    "output_degree",
    "random_circuit",
    "read",
    "shift_identity",
    "shift_up_identity",
    "to_polynomial",
]
