"""The gated delta rule's routes through fla, whole (forward and backward), run by Triton's interpreter on CPU tensors:
fla's own kernels, the route where fla refuses its gated backward (our forms of ``chunk_bwd_dqkwg`` and of the gated
``prepare_wy_repr_bwd`` registered in fla's backend registry in place of its kernels) and the trial ``"dplr"`` (fla's
DPLR op). No GPU's code generation is involved, so a route that passes here computes the rule as written, and one that
fails on a GPU while passing here is miscompiled there. (Not in CI: fla is the ``gpu`` extra.)"""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.frontier.conftest import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fla") is None or importlib.util.find_spec("triton") is None,
    reason="needs fla and triton (fla's kernels run under Triton's interpreter on CPU tensors)",
)

# fla's modules whose kernels the routes launch and that index their loops as Triton scalars
LOOP_MODULES = (
    "fla.ops.common.chunk_delta_h",
    "fla.ops.common.chunk_o",
    "fla.ops.gated_delta_rule.chunk_fwd",
    "fla.ops.gated_delta_rule.wy_fast",
    "fla.ops.generalized_delta_rule.dplr.chunk_h_fwd",
    "fla.ops.generalized_delta_rule.dplr.chunk_h_bwd",
)
# fla's DPLR modules that pick a row of a tile with tl.gather where Triton has it
GATHER_MODULES = ("fla.ops.generalized_delta_rule.dplr.chunk_A_fwd", "fla.ops.generalized_delta_rule.dplr.chunk_A_bwd")

# float32 (fla's kernels take no float64): two sequences of 80 positions, two chunks of fla's 64, the second ragged
SETUP = """
import importlib

import torch
import triton.runtime.autotuner as autotuner
from mqarkit.gpu.frontier.kernels import fla_delta, fla_dqkwg, fla_wy
from mqarkit.tolerances import assert_close_scaled
from tests.frontier.test_fla_delta_op import naive_delta_rule

autotuner.Autotuner._bench = lambda self, *a, config=None, **k: [0.0, 0.0, 0.0]  # no device to time on
tensor_loop_indices(*LOOP_MODULES)
for name in GATHER_MODULES:  # the interpreter has no tl.gather: fla's own fallback (a masked sum) picks the row
    importlib.import_module(name).IS_GATHER_SUPPORTED = False
calls = []
for module, name in ((fla_dqkwg, "chunk_dqkwg"), (fla_wy, "chunk_wy_backward")):
    setattr(module, name, lambda *a, _f=getattr(module, name), _n=name, **k: calls.append(_n) or _f(*a, **k))


def run(who, switch, inputs, probe):
    # the route fla_delta takes where fla refuses its gated backward ("torch": our forms serve) or not ("fla")
    fla_delta.gated_backward = fla_dqkwg.gated_backward = lambda: who
    os.environ["MQARKIT_FLA_GATED_DELTA_RULE"] = switch
    leaves = [t.detach().requires_grad_() for t in inputs]
    out = fla_delta._fla_forward(*leaves)
    return [out, *torch.autograd.grad(out, leaves, probe)]


gen = torch.Generator().manual_seed(0)
rb, n, h, k, v = 2, 80, 2, 16, 16
q, key = (torch.nn.functional.normalize(torch.randn(rb, n, h, k, generator=gen), dim=-1) for _ in range(2))
val = torch.randn(rb, n, h, v, generator=gen)
beta = torch.rand(rb, n, h, generator=gen)
log_decay = -torch.rand(rb, n, h, generator=gen) * DECAY_
inputs = [q, key, val, beta, log_decay]
probe = torch.randn(rb, n, h, v, generator=gen)
names = ("values", "gradient of q", "gradient of k", "gradient of v", "gradient of beta", "gradient of log_decay")
"""

AGAINST_THE_RULE = """
import os
exec(SETUP)
got = run(WHO, SWITCH, inputs, probe)
assert fla_delta.gated_route() == ROUTE
assert ("chunk_wy_backward" in calls) == ("chunk_dqkwg" in calls) == (ROUTE == "gated" and WHO == "torch"), calls
exact = [t.double().requires_grad_() for t in inputs]
want = naive_delta_rule(*exact)
for name, a, b in zip(names, got, [want, *torch.autograd.grad(want, exact, probe.double())]):
    assert_close_scaled(a, b.float(), dtype="float32", context=name)
print("ok")
"""

AGAINST_FLAS_KERNELS = """
import os
exec(SETUP)
theirs = run("fla", "", inputs, probe)
assert not calls
ours = run("torch", "", inputs, probe)
assert {"chunk_dqkwg", "chunk_wy_backward"} <= set(calls), calls
for name, a, b in zip(names, ours, theirs):
    assert_close_scaled(a, b, dtype="float32", context=name)
print("ok")
"""


def _run(interpreted, script: str, **constants) -> None:
    head = f"LOOP_MODULES = {LOOP_MODULES!r}\nGATHER_MODULES = {GATHER_MODULES!r}\nSETUP = {SETUP!r}\n"
    for name, value in constants.items():
        head += f"{name} = {value!r}\n"
    interpreted(
        head + script,
        env={"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), ROOT) if p)},
    )


@pytest.mark.parametrize(
    ("who", "switch", "route", "decay"),
    [
        ("fla", "", "gated", 0.5),  # fla's own kernels throughout (where it does not refuse)
        ("torch", "", "gated", 0.5),  # where fla refuses, by default: our two forms in fla's backward
        ("torch", "dplr", "dplr", 0.5),  # the trial "dplr": fla's DPLR op
        ("torch", "dplr", "dplr", 4.0),  # its kernels without a decay bound (chunks of 16), under strong decays
    ],
)
def test_a_gated_route_through_fla_computes_the_gated_delta_rule(interpreted, who, switch, route, decay):
    """Values and the gradients of all five inputs against the rule token by token (float64), at the float32 table,
    decays down to e^{−decay} a step."""
    _run(interpreted, AGAINST_THE_RULE, WHO=who, SWITCH=switch, ROUTE=route, DECAY_=decay)


def test_with_strong_decays_our_forms_equal_flas_own_kernels(interpreted):
    """Decays down to e^{−4} a step, where the chunked form's float32 rounding of cumulated decays (down to e^{−256}
    within a chunk) exceeds the float32 table against the exact rule: fla's op with our two forms against fla's own
    kernels, the same chunked form, at the float32 table."""
    _run(interpreted, AGAINST_FLAS_KERNELS, DECAY_=4.0)
