"""The shipped sweeps ("presets"): [B] Fig. 2, its Based slice, [Z] Fig. 2 and a CPU-sized one; reductions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from mqarkit.gpu.frontier.data import Segment
from mqarkit.gpu.frontier.model import ModelConfig
from mqarkit.gpu.frontier.sweep import SweepConfig

REFERENCE_LRS = tuple(float(x) for x in np.logspace(-3, -1.5, 4))  # 1e-3, 10^-2.5, 1e-2, 10^-1.5


FIG2_TRAIN = (
    Segment(64, 4, 100_000),
    Segment(128, 8, 20_000),
    Segment(256, 16, 20_000),
    Segment(256, 32, 20_000),
    Segment(256, 64, 20_000),
)


FIG2_TEST = tuple(
    Segment(n, d, 1_000) for n, d in [(64, 4), (64, 8), (64, 16), (128, 32), (256, 64), (512, 128), (1024, 256)]
)


# ---------------------------------------------------------------- presets
def _fig2_models(vocab: int, max_len: int) -> tuple[ModelConfig, ...]:
    mk = lambda fam, d, **kw: ModelConfig(fam, d, vocab_size=vocab, max_len=max_len, **kw)  # noqa: E731
    models = [mk("attention", d) for d in (64, 128)]
    models += [mk("based", d, feature_dim=f) for d in (48, 64, 128) for f in (8, 16, 24)]
    models += [mk("sliding_window", 128, window=w) for w in (8, 16, 32, 64, 128, 256, 512, 1024)]
    models += [mk("ssm", d, d_state=n) for d in (64, 128, 256) for n in (8, 16, 24)]
    models += [mk("long_conv", d) for d in (64, 128, 256)]
    return tuple(models)


def preset_based_fig2() -> list[SweepConfig]:
    return [SweepConfig("based-fig2", _fig2_models(8192, 1024), REFERENCE_LRS, 32, FIG2_TRAIN, FIG2_TEST)]


def preset_based_slice() -> list[SweepConfig]:
    models = tuple(m for m in _fig2_models(8192, 1024) if m.family == "based")
    return [SweepConfig("based-slice", models, REFERENCE_LRS, 32, FIG2_TRAIN, FIG2_TEST)]


def preset_zoology_fig2() -> list[SweepConfig]:
    """[Z] Fig. 2: accuracy vs d at (N, D) ∈ {(64,4),(128,8),(256,16),(512,64)}, one sweep per (N, D)."""
    sweeps = []
    for n, d in [(64, 4), (128, 8), (256, 16), (512, 64)]:
        mk = lambda fam, w, **kw: ModelConfig(fam, w, vocab_size=8192, max_len=n, **kw)  # noqa: E731, B023
        models = [mk("attention", w) for w in (64, 128, 256, 512)]
        models += [mk("long_conv", w) for w in (64, 128, 256, 512)]
        models += [mk("based", w, feature_dim=16) for w in (64, 128, 256, 512)]
        models += [mk("ssm", w, d_state=16) for w in (64, 128, 256, 512)]
        sweeps.append(
            SweepConfig(
                f"zoology-fig2-N{n}",
                tuple(models),
                REFERENCE_LRS,
                64,
                (Segment(n, d, 100_000),),
                (Segment(n, d, 3_000),),
            )
        )
    return sweeps


def preset_tiny() -> list[SweepConfig]:
    """A CPU-sized sweep (seconds) exercising every family; for tests and smoke runs."""
    mk = lambda fam, **kw: ModelConfig(fam, 32, vocab_size=64, max_len=32, **kw)  # noqa: E731
    models = (
        mk("attention"),
        mk("based", feature_dim=4),
        mk("based", feature_dim=8),
        mk("sliding_window", window=4),
        mk("ssm", d_state=4),
        mk("long_conv"),
    )
    return [
        SweepConfig(
            "tiny",
            models,
            (3e-3, 1e-2),
            2,
            (Segment(16, 2, 128), Segment(32, 4, 64)),
            (Segment(16, 2, 32), Segment(32, 8, 32)),
            vocab_size=64,
            batch_size=32,
            test_batch_size=32,
        )
    ]


PRESETS: dict[str, Callable[[], list[SweepConfig]]] = {
    "based-fig2": preset_based_fig2,
    "based-slice": preset_based_slice,
    "zoology-fig2": preset_zoology_fig2,
    "tiny": preset_tiny,
}


def _scaled(segments: tuple[Segment, ...], factor: float) -> tuple[Segment, ...]:
    return tuple(replace(s, num_examples=max(1, round(s.num_examples * factor))) for s in segments)


def _keep_models(sw: SweepConfig, label: str, attribute: str, wanted: tuple, preset: str) -> SweepConfig:
    """``sw`` with only the models whose ``attribute`` is in ``wanted``; every wanted value must occur."""
    unknown = set(wanted) - {getattr(m, attribute) for m in sw.models}
    if unknown:
        raise ValueError(f"{label}={wanted}: {sorted(unknown)} not in preset {preset!r}")
    return replace(sw, models=tuple(m for m in sw.models if getattr(m, attribute) in wanted))


def get_preset(
    name: str,
    *,
    epochs: int | None = None,
    lrs: tuple[float, ...] | None = None,
    families: tuple[str, ...] | None = None,
    d_models: tuple[int, ...] | None = None,
    example_scale: float = 1.0,
    seed: int | None = None,
) -> list[SweepConfig]:
    """A preset with optional reductions (recorded in each sweep's ``notes``); validated."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r}: unknown; choose from {sorted(PRESETS)}")
    if not (0 < example_scale <= 1):
        raise ValueError(f"example_scale={example_scale}: needs 0 < example_scale <= 1")
    out = []
    for sw in PRESETS[name]():
        notes = list(sw.notes)
        if epochs is not None:
            notes.append(f"epochs {sw.epochs} -> {epochs}")
            sw = replace(sw, epochs=epochs)
        if lrs is not None:
            notes.append(f"lrs {sw.lrs} -> {tuple(lrs)}")
            sw = replace(sw, lrs=tuple(lrs))
        for label, attribute, wanted in (("families", "family", families), ("d_models", "d_model", d_models)):
            if wanted is not None:
                sw = _keep_models(sw, label, attribute, tuple(wanted), name)
                notes.append(f"{label} {tuple(wanted)}")
        if example_scale != 1.0:
            sw = replace(sw, train=_scaled(sw.train, example_scale), test=_scaled(sw.test, example_scale))
            notes.append(f"examples x{example_scale}")
        if seed is not None:
            sw = replace(sw, seed=seed)
        sw = replace(sw, notes=tuple(notes))
        sw.validate()
        out.append(sw)
    return out
