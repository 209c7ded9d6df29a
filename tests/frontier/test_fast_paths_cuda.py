"""The frontier harness's CUDA-only fast paths against the forms they replace (marked ``gpu``).

- fla's flash-style Taylor attention (:mod:`mqarkit.gpu.frontier.kernels.fla_taylor`) against the stacked model's direct
  quadratic
  form, forward and gradients, with padded feature dims;
- the compiled model (``hidden_at`` with ``torch.compile``) against the eager one, values and gradients, every
  family;
- CUDA-graphed training steps of the fla-backed recurrent families against eager steps;
- CUDA-graphed training steps (:mod:`mqarkit.gpu.frontier.cuda_graphs`) against eager steps, step by step, a partial
  (eager) batch and a learning-rate freeze included, with the per-run loss sums the steps add up.
"""

from __future__ import annotations

import os

import pytest
import torch
from cuda_knobs import CUDA_KNOBS, CUDA_WIDTH

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.data import Segment, mqar_batch
from mqarkit.gpu.frontier.kernels.fla_delta import COMPILE_SWITCH
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.steps import SegmentData, train_step
from mqarkit.tolerances import assert_as_accurate_as_reference, assert_close

pytestmark = pytest.mark.gpu


def _based_stack(device, feature_dims=(8, 16, 24), d=64, vocab=256, seed=0):
    cfgs = [ModelConfig("based", d, vocab_size=vocab, max_len=256, feature_dim=f) for f in feature_dims]
    return StackedHybrid(cfgs, [seed + i for i in range(len(cfgs))], device)


def test_fla_taylor_attention_matches_reference_form():
    from mqarkit.gpu.frontier.kernels.fla_taylor import fla_taylor_available

    device = torch.device("cuda")
    model = _based_stack(device)
    u = torch.randn(3, 4, 200, 64, generator=torch.Generator(device).manual_seed(1), device=device)
    if not fla_taylor_available(u.device):
        pytest.skip("fla (flash-linear-attention) is not installed")
    u.requires_grad_()
    mixer = model.mixer
    params = [u, mixer.q_w, mixer.k_w, mixer.v_w, mixer.o_w]
    # float32 through both: fla's tiles (allow_tf32=False) sum in another order than the quadratic form, and its
    # epsilon is 1e-6, not 1e-12 (relative effect <= 2e-6 since the denominator is >= 1/2); tf32-level tolerance.
    fast, ref = mixer(u), torch.stack([mixer.reference(r, u[r]) for r in range(model.runs)])
    assert_close(fast, ref, dtype="tfloat32", context="fla forward (float32)")
    g = torch.randn(ref.shape, generator=torch.Generator(device).manual_seed(2), device=device)
    gf = torch.autograd.grad(fast, params, g)
    gr = torch.autograd.grad(ref, params, g)
    for a, b, name in zip(gf, gr, ("u", "q_w", "k_w", "v_w", "o_w")):
        assert_close(a, b, dtype="tfloat32", context=f"fla grad {name} (float32)")
        if name in ("q_w", "k_w"):  # padded feature columns get exactly no gradient
            assert not bool(a[0, :, 8:].any()) and not bool(a[1, :, 16:].any())
    # bf16, as in training: fla against our own bf16 kernel on the same bf16 inputs
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        fast16 = mixer(u)
        os.environ["MQARKIT_FLA"] = "0"
        try:
            ours16 = mixer(u)
        finally:
            del os.environ["MQARKIT_FLA"]
    assert_close(fast16.float(), ours16.float(), dtype="bfloat16", context="fla forward (bf16)")


TWO_RUNS = CUDA_KNOBS  # two runs per family, with knobs that differ (padding under compile and in graphs)
RECURRENT = ("mamba2", "rwkv4", "rwkv7", "gla", "delta_net", "gated_delta_net")  # issue 16's fla-backed families


MIXER_LAYERS = ("mamba", "h3", "hyena", "rwkv4")  # the families the presets build with layers = "mixer"


def _stack(family: str, device, layers: str = "hybrid") -> StackedHybrid:
    cfgs = [ModelConfig(family, CUDA_WIDTH, vocab_size=256, max_len=256, layers=layers, **k) for k in TWO_RUNS[family]]
    return StackedHybrid(cfgs, [0, 1], device)


@pytest.mark.parametrize(
    ("family", "layers"), [(f, "hybrid") for f in sorted(TWO_RUNS)] + [(f, "mixer") for f in MIXER_LAYERS]
)
def test_compiled_model_equals_eager_model(family, layers, monkeypatch):
    """``torch.compile`` of the query-row path against eager (fla's ops are graph breaks, run eagerly); the delta rules
    compile only in their trial (``MQARKIT_COMPILE_DELTA_RULE=1``, set here: their fla call one opaque op, or, where fla
    does not serve, the plain-torch recurrence a graph break); under ``layers = "mixer"`` the compiled generic trunk
    with block 0's mixer in it. Two sequence lengths, the shorter first, as a sweep's segments come: the second runs the
    code compiled for the first with dynamic sizes (where DeltaNet's stack once failed inductor's stride assertion,
    ``ops.fused_projection``). Both run in bf16, which rounds each fusion's intermediates where it ends: the compiled
    form is held to the low-precision rule against the float32 eager model, with the eager bf16 model as the measure
    of what bf16 costs (elementwise against eager bf16, one entry of Gated DeltaNet's ``a_w`` gradient once differed by
    1.25% of the gradient's scale, 0.25% outside the table, with the other 255 inside)."""
    monkeypatch.setenv(COMPILE_SWITCH, "1")
    device = torch.device("cuda")
    model = _stack(family, device, layers)
    g = torch.Generator().manual_seed(3)
    segments = [
        SegmentData(Segment(n, kv, 32), *(t.to(device) for t in mqar_batch(256, n, kv, 32, generator=g)))
        for n, kv in ((64, 4), (128, 8))
    ]
    params = list(model.parameters())
    for seg in segments:
        probe = None  # a random direction: the rows end in LN_f, whose sum of squares is nearly constant
        out = {}
        for compiled, dtype in (("1", torch.bfloat16), ("0", torch.bfloat16), ("0", torch.float32)):
            monkeypatch.setenv("MQARKIT_COMPILE", compiled)
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False, enabled=dtype == torch.bfloat16):
                rows = model.hidden_at(seg.inputs, seg.qpos)
            if probe is None:
                probe = torch.randn(rows.shape, generator=torch.Generator(device).manual_seed(4), device=device)
            out[compiled, dtype] = [rows.float(), *torch.autograd.grad((rows.float() * probe).sum(), params)]
        where = f"{family} N = {seg.inputs.shape[1]} compiled"
        names = ["forward", *(f"gradient {name}" for name, _ in model.named_parameters())]
        fast, low, expected = out["1", torch.bfloat16], out["0", torch.bfloat16], out["0", torch.float32]
        for name, a, b, e in zip(names, fast, low, expected, strict=True):
            assert_as_accurate_as_reference(a, e, b, dtype="bfloat16", context=f"{where} {name}")


def test_graphed_steps_equal_eager_steps():
    from mqarkit.gpu.frontier.cuda_graphs import GraphedSteps

    device = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    seg = SegmentData(Segment(64, 4, 40), *(t.to(device) for t in mqar_batch(256, 64, 4, 40, generator=g)))
    short = SegmentData(Segment(128, 8, 24), *(t.to(device) for t in mqar_batch(256, 128, 8, 24, generator=g)))
    lrs = torch.tensor([1e-3, 3e-3, 1e-2])
    eager_model, graph_model = _based_stack(device), _based_stack(device)
    eager_opt, graph_opt = StackedAdamW(eager_model, lrs), StackedAdamW(graph_model, lrs)
    eager_losses, graph_losses = torch.zeros(3, device=device), torch.zeros(3, device=device)
    graphed = GraphedSteps(graph_model, graph_opt, batch_size=8, budget=2**30, loss_sums=graph_losses)
    plan = [(seg, 8), (short, 8), (seg, 8), (seg, 5), (short, 8), (seg, 8)]  # 5 rows: an eager (partial) batch
    rows_g = torch.Generator(device).manual_seed(3)
    for i, (s, b) in enumerate(plan):
        rows = torch.randperm(s.inputs.shape[0], generator=rows_g, device=device)[:b]
        factor = 1.0 - 0.1 * i
        if i == 4:  # freeze run 1 (an early stop) in both
            active = torch.tensor([True, False, True], device=device)
            eager_opt.set_active(active)
            graph_opt.set_active(active)
        train_step(eager_model, eager_opt, s, rows, factor, 2**30, eager_losses)
        graphed.step(s, rows, factor)
        torch.cuda.synchronize()
        # not bit-equal: the embedding's backward adds repeated tokens with atomics (order-dependent float sums),
        # and Adam turns tiny gradient differences into relative update differences of ~1e-4
        for (name, a), b_ in zip(graph_model.named_parameters(), eager_model.parameters()):
            assert_close(a, b_, dtype="tfloat32", context=f"step {i} {name}")
        # the per-run loss sums: each replay adds its step's losses; the warm-up steps' additions were undone
        assert_close(graph_losses, eager_losses, dtype="bfloat16", context=f"step {i} loss sums")
    assert len(graphed.graphs) == 2  # one graph per segment; the partial batch ran eagerly
    assert float(graph_opt.t) == float(eager_opt.t) == len(plan)


@pytest.mark.parametrize(
    ("family", "layers"), [(f, "hybrid") for f in RECURRENT] + [(f, "mixer") for f in MIXER_LAYERS]
)
def test_graphed_steps_of_the_recurrent_families_equal_eager_steps(family, layers):
    """A training step captured as one CUDA graph (fla's chunked kernels inside, compiled trunk around them) replays
    as the eager step: the families are ``graphable`` (no host synchronisation); under ``layers = "mixer"`` with
    both blocks' mixers in the graph."""
    from mqarkit.gpu.frontier.cuda_graphs import GraphedSteps

    device = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    seg = SegmentData(Segment(64, 4, 40), *(t.to(device) for t in mqar_batch(256, 64, 4, 40, generator=g)))
    lrs = torch.tensor([1e-3, 1e-2])
    eager_model, graph_model = _stack(family, device, layers), _stack(family, device, layers)
    eager_opt, graph_opt = StackedAdamW(eager_model, lrs), StackedAdamW(graph_model, lrs)
    graphed = GraphedSteps(graph_model, graph_opt, batch_size=8, budget=2**30)
    rows_g = torch.Generator(device).manual_seed(3)
    for i in range(3):
        rows = torch.randperm(seg.inputs.shape[0], generator=rows_g, device=device)[:8]
        train_step(eager_model, eager_opt, seg, rows, 1.0, 2**30)
        graphed.step(seg, rows, 1.0)
        torch.cuda.synchronize()
        for (name, a), b_ in zip(graph_model.named_parameters(), eager_model.parameters()):
            assert_close(a, b_, dtype="tfloat32", context=f"{family} step {i} {name}")
    assert len(graphed.graphs) == 1


def test_graphs_can_be_turned_off(monkeypatch):
    from mqarkit.gpu.frontier.cuda_graphs import graphs_enabled

    monkeypatch.setitem(os.environ, "MQARKIT_CUDA_GRAPHS", "0")
    assert not graphs_enabled(torch.device("cuda"))
    monkeypatch.setitem(os.environ, "MQARKIT_CUDA_GRAPHS", "1")
    assert graphs_enabled(torch.device("cuda")) and not graphs_enabled(torch.device("cpu"))
