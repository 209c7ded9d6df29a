"""mqarkit: executable theory of associative recall (MQAR) in efficient sequence models.

The core package holds what every other part depends on: the MQAR task and its oracle, the tolerance policy,
hypothesis strategies and the command line. It imports neither torch nor sympy.

Sub-packages (each a top-level folder of the repository, mapped under this root by ``pyproject.toml``):

- ``mqarkit.polynomials``   the operator IR (symbolic / exact / float64 evaluation), arithmetic circuits;
- ``mqarkit.constructions`` explicit weights that solve MQAR, with claimed resources;
- ``mqarkit.proofs_checks`` the claim registry, machine checks, ``mqarkit verify`` and the bound tables;
- ``mqarkit.gpu``           torch mixers, weight loaders, state-size measurement, the frontier harness.
"""

__version__ = "0.1.0"
