"""The shipped sweeps ("presets"), as sweep files inside the package, and reductions of any sweep.

Presets (``presets/<name>.toml``): ``based-fig2`` ([B] Fig. 2 at the paper's budget), ``based-slice`` (its Based
runs), ``zoology-fig2`` ([Z] Fig. 2, four sweeps), ``tiny`` (CPU-sized, every family). :func:`reduce` shrinks a sweep
for a quick look (fewer epochs, learning rates, families, widths or examples; other seeds) and records each change in
the sweep's ``notes``, which every record carries.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from importlib import resources

from mqarkit.gpu.frontier.data import Segment
from mqarkit.gpu.frontier.sweep import SweepConfig
from mqarkit.gpu.frontier.sweep_file import parse_sweeps


def preset_names() -> list[str]:
    """The presets shipped with the package."""
    folder = resources.files("mqarkit.gpu.frontier") / "presets"
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> list[SweepConfig]:
    """The sweeps of the shipped preset ``name``, as shipped."""
    names = preset_names()
    if name not in names:
        raise ValueError(f"preset={name!r}: unknown; choose from {', '.join(names)}")
    source = resources.files("mqarkit.gpu.frontier") / "presets" / f"{name}.toml"
    return parse_sweeps(source.read_text(), f"preset {name}")


def _lrs(lrs) -> str:
    """Learning rates as a note shows them: 4 significant digits (``0.003162``, not its 17-digit repr)."""
    return ", ".join(f"{lr:.4g}" for lr in lrs)


def _scaled(segments: tuple[Segment, ...], factor: float) -> tuple[Segment, ...]:
    return tuple(replace(s, num_examples=max(1, round(s.num_examples * factor))) for s in segments)


# the notes of a command's choice of models (``families``, ``d_models``): ``"<label> [values]"``; they select runs and
# reduce none (a figure's title counts the runs instead: plot_style.default_title)
SELECTION_LABELS = ("families", "d_models")
SELECTION_PREFIXES = tuple(f"{label} " for label in SELECTION_LABELS)  # how such a note begins
CHANGE_NOTE = re.compile(r"^(epochs|lrs|seeds) (\[?.*?\]?) -> (\[?.*?\]?)$")  # "<what> <before> -> <after>"


def note_reduces(note: str) -> bool:
    """Whether a note that :func:`reduce` writes names a reduction of the sweep's budget: fewer epochs, examples
    scaled down, or learning rates or seeds that leave out some of the sweep's; not a change that keeps or extends
    the budget (more seeds: ``seeds [0] -> [0, 1, 2]``, more epochs, another data seed) nor a choice of models
    (:data:`SELECTION_LABELS`). A note of another form (a sweep file's own) counts as a reduction: it is not known to
    be none."""
    if note.startswith((*SELECTION_PREFIXES, "data_seed ")):
        return False
    change = CHANGE_NOTE.match(note)
    if change is None:
        return True  # "examples x0.1" and anything unknown
    what, before, after = change.groups()
    if what == "epochs":
        return int(after) < int(before)
    return not set(_listed(before)) <= set(_listed(after))


def _listed(text: str) -> list[str]:
    """``"[0.001, 0.01]"`` -> ``["0.001", "0.01"]`` (as a note shows the values)."""
    return [v.strip() for v in text.strip("[]").split(",") if v.strip()]


def reduce(
    sweeps: list[SweepConfig],
    *,
    epochs: int | None = None,
    lrs: tuple[float, ...] | None = None,
    families: tuple[str, ...] | None = None,
    d_models: tuple[int, ...] | None = None,
    example_scale: float = 1.0,
    seeds: tuple[int, ...] | None = None,
    data_seed: int | None = None,
) -> list[SweepConfig]:
    """``sweeps`` with the changes given, each recorded in ``notes``; validated. ``families`` and ``d_models`` keep
    only those models, and every value named must occur in some sweep."""
    if not (isinstance(example_scale, int | float) and 0 < example_scale <= 1 and math.isfinite(example_scale)):
        raise ValueError(f"example_scale={example_scale}: needs 0 < example_scale <= 1")
    for label, attribute, wanted in (("families", "family", families), ("d_models", "d_model", d_models)):
        if wanted is not None:
            have = {getattr(m, attribute) for sw in sweeps for m in sw.models}
            unknown = sorted(set(wanted) - have, key=str)
            if unknown:
                raise ValueError(f"{label}={list(wanted)}: {unknown} in none of the sweeps ({sorted(have, key=str)})")
    out = []
    for sw in sweeps:
        notes = list(sw.notes)
        if epochs is not None:
            notes.append(f"epochs {sw.epochs} -> {epochs}")
            sw = replace(sw, epochs=epochs)
        if lrs is not None:
            notes.append(f"lrs [{_lrs(sw.lrs)}] -> [{_lrs(lrs)}]")
            sw = replace(sw, lrs=tuple(lrs))
        for label, attribute, wanted in zip(SELECTION_LABELS, ("family", "d_model"), (families, d_models)):
            if wanted is not None:
                sw = replace(sw, models=tuple(m for m in sw.models if getattr(m, attribute) in wanted))
                notes.append(f"{label} {list(wanted)}")
        if example_scale != 1.0:
            sw = replace(sw, train=_scaled(sw.train, example_scale), test=_scaled(sw.test, example_scale))
            notes.append(f"examples x{example_scale}")
        if seeds is not None:
            notes.append(f"seeds {list(sw.seeds)} -> {list(seeds)}")
            sw = replace(sw, seeds=tuple(seeds))
        if data_seed is not None:
            notes.append(f"data_seed {sw.data_seed} -> {data_seed}")
            sw = replace(sw, data_seed=data_seed)
        if not sw.models:
            continue  # a filter left this sweep without models
        sw = replace(sw, notes=tuple(notes))
        sw.validate()
        out.append(sw)
    return out


def get_preset(name: str, **reductions) -> list[SweepConfig]:
    """A shipped preset with optional reductions (:func:`reduce`'s keywords); validated."""
    return reduce(load_preset(name), **reductions)
