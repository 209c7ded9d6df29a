"""Reference weights into a family: the reference implementation's ``state_dict`` of an H3 or a Hyena mixer as one
run's parameters, by an explicit, checked map (design.md principle 6).

Each map names every reference key it reads, checks its shape, states each transform (``.T``: the reference's
``nn.Linear`` keeps ``(out, in)``, our ``linear`` takes ``(in, out)``; a Conv1d's taps reversed into lag order; a
leading channel axis of size 1 dropped; a permutation of rows), refuses a missing or an unknown key, and checks the
reference's non-trainable buffers and tied parameters against what the family computes itself. :func:`load_run` then
copies the result into a stacked family, with the family's own shapes asserted (the padded part of a stack stays 0).

The golden files (``mixers_index.json`` entries ``h3_hd2_n2``, ``h3_hd2_n16``, ``hyena_default``) are read through
:mod:`mqarkit.golden_data`; :func:`golden_case` builds the family from an entry and loads its weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from mqarkit.golden_data import golden_file
from mqarkit.gpu.frontier.families import family_class
from mqarkit.gpu.frontier.families.hyena import EMBED_DIM, FILTER_WIDTH, SHORT_TAPS, decay_rates, filter_positions
from mqarkit.gpu.frontier.protocol import KnobValue, StackedMixer

ReferenceState = Mapping[str, torch.Tensor]


class _Reader:
    """Reads reference tensors by key with a shape check, and at the end refuses keys that were never read."""

    def __init__(self, state: ReferenceState, what: str):
        self.state, self.what, self.read = state, what, set()

    def __call__(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in self.state:
            raise ValueError(f"{self.what}: reference key {key!r} missing")
        t = torch.as_tensor(self.state[key])
        if tuple(t.shape) != shape:
            raise ValueError(f"{self.what}: reference {key!r} has shape {tuple(t.shape)}, expected {shape}")
        self.read.add(key)
        return t

    def finish(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        unknown = sorted(set(self.state) - self.read)
        if unknown:
            raise ValueError(f"{self.what}: reference keys not mapped: {unknown}")
        return out


def h3_from_reference(state: ReferenceState, *, d_model: int, d_state: int, head_dim: int) -> dict[str, torch.Tensor]:
    """``zoology.mixers.h3.H3(d_model, d_state, head_dim=...)``'s ``state_dict`` -> one run of ``h3``.

    Transforms: projections ``.T``; the channel axis (size 1) of both SSMs' ``C`` dropped; ``output_linear.weight.T``
    with its rows permuted from the reference's output order ``j·H + h`` to ours, ``h·p + j``. The diagonal SSM's
    ``B``, ``C`` are (re, im) pairs in both.
    """
    d, n, p = d_model, d_state, head_dim
    heads, modes = d // p, n // 2
    read = _Reader(state, f"h3 (d_model={d}, d_state={n}, head_dim={p})")
    out = {}
    for ours, ref in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj")):
        out[f"{ours}_w"] = read(f"{ref}.weight", (d, d)).T
        out[f"{ours}_b"] = read(f"{ref}.bias", (d,))
    out["shift_b"] = read("ssm_k_kernel.kernel.B", (d, n))
    out["shift_c"] = read("ssm_k_kernel.kernel.C", (1, d, n))[0]
    out["shift_skip"] = read("ssm_k_D", (d,))
    out["log_dt"] = read("kernel.kernel.log_dt", (heads,))
    out["a_re"] = read("kernel.kernel.inv_A_real", (heads, modes))
    out["a_im"] = read("kernel.kernel.A_imag", (heads, modes))
    out["ssm_b"] = read("kernel.kernel.B", (heads, modes, 2))
    out["ssm_c"] = read("kernel.kernel.C", (1, heads, modes, 2))[0]
    out["ssm_skip"] = read("D", (heads,))
    ours = torch.arange(d)
    reference_row = (ours % p) * heads + ours // p  # our channel h·p + j is the reference's j·H + h
    out["o_w"] = read("output_linear.weight", (d, d)).T[reference_row]
    out["o_b"] = read("output_linear.bias", (d,))
    return read.finish(out)


def hyena_from_reference(state: ReferenceState, *, d_model: int, l_max: int) -> dict[str, torch.Tensor]:
    """``zoology.mixers.hyena.Hyena(d_model, l_max)`` (its defaults: one head, one block, filter MLP width 64,
    embedding 3, short filter 3, modulation on)'s ``state_dict`` -> one run of ``hyena``.

    Transforms: linear weights ``.T``; the short filter's Conv1d taps ``(3d, 1, k)`` reversed into lag order
    ``(3d, k)``; ``pos_emb.z (1, L, 3)`` -> ``(L, 3)``. Checked, not loaded: the buffers ``pos_emb.t`` and
    ``modulation.deltas`` equal the family's constants (exactly, in float64), and the three ``Sin`` frequencies
    (``implicit_filter.{1,3,5}.freq``, one shared module in the reference) are equal.
    """
    d, width = d_model, FILTER_WIDTH
    read = _Reader(state, f"hyena (d_model={d}, l_max={l_max})")
    out = {"in_w": read("in_proj.weight", (3 * d, d)).T, "in_b": read("in_proj.bias", (3 * d,))}
    out["short_k"] = read("short_filter.weight", (3 * d, 1, SHORT_TAPS))[:, 0].flip(-1)  # lag s at k − 1 − s
    out["short_b"] = read("short_filter.bias", (3 * d,))
    out["filter_z"] = read("filter_fn.pos_emb.z", (1, l_max, EMBED_DIM))[0]
    out["filter_w0"] = read("filter_fn.implicit_filter.0.weight", (width, EMBED_DIM)).T
    out["filter_b0"] = read("filter_fn.implicit_filter.0.bias", (width,))
    freqs = [read(f"filter_fn.implicit_filter.{i}.freq", (1, width)) for i in (1, 3, 5)]
    if not all(torch.equal(f, freqs[0]) for f in freqs):
        raise ValueError("hyena: implicit_filter.{1,3,5}.freq differ; the reference ties them (one Sin module)")
    out["filter_freq"] = freqs[0][0]
    for ours, ref in (("1", "2"), ("2", "4")):
        out[f"filter_w{ours}"] = read(f"filter_fn.implicit_filter.{ref}.weight", (width, width)).T
        out[f"filter_b{ours}"] = read(f"filter_fn.implicit_filter.{ref}.bias", (width,))
    out["filter_w3"] = read("filter_fn.implicit_filter.6.weight", (d, width)).T
    out["filter_skip"] = read("filter_fn.bias", (d,))
    out["o_w"], out["o_b"] = read("out_proj.weight", (d, d)).T, read("out_proj.bias", (d,))
    constants = {
        "filter_fn.pos_emb.t": (filter_positions(l_max, torch.float64), (1, l_max, 1)),
        "filter_fn.modulation.deltas": (decay_rates(d, torch.float64), (1, 1, d)),
    }
    for key, (value, shape) in constants.items():
        if not torch.equal(read(key, shape).to(torch.float64).flatten(), value):
            raise ValueError(f"hyena: reference buffer {key!r} differs from the family's constant")
    return read.finish(out)


@torch.no_grad()
def load_run(mixer: StackedMixer, run: int, params: Mapping[str, torch.Tensor]) -> None:
    """Copy one run's parameters (names and shapes exactly the family's, see :meth:`StackedMixer.run_parameters`)
    into run ``run`` of ``mixer``."""
    target = mixer.run_parameters(run)
    if set(params) != set(target):
        missing, extra = sorted(set(target) - set(params)), sorted(set(params) - set(target))
        raise ValueError(f"{mixer.name}: parameters missing {missing}, unknown {extra}")
    for name, value in params.items():
        if tuple(value.shape) != tuple(target[name].shape):
            need = tuple(target[name].shape)
            raise ValueError(f"{mixer.name}: {name} has shape {tuple(value.shape)}, run {run} needs {need}")
        target[name].copy_(value)


@dataclass(frozen=True)
class GoldenCase:
    """A golden entry as one run of a family (float64): its input, the reference's output and extra arrays."""

    name: str
    mixer: StackedMixer
    x: torch.Tensor  # (2, 16, d) float64
    y: torch.Tensor  # (2, 16, d) float64
    aux: dict[str, torch.Tensor]  # "aux:<name>" arrays of the file, by name
    entry: dict  # the mixers_index.json entry


GOLDEN_FAMILIES = {"h3_hd2_n2": "h3", "h3_hd2_n16": "h3", "hyena_default": "hyena"}


def golden_case(name: str) -> GoldenCase:
    """Golden entry ``name`` (a key of :data:`GOLDEN_FAMILIES`) loaded into one float64 run of its family."""
    if name not in GOLDEN_FAMILIES:
        raise ValueError(f"name={name!r}: choose from {', '.join(GOLDEN_FAMILIES)}")
    entry = next(e for e in json.loads(golden_file("mixers_index.json").read_text()) if e["file"] == f"{name}.npz")
    kwargs = entry["kwargs"]
    with np.load(golden_file(entry["file"])) as arrays:
        data = {k: torch.from_numpy(arrays[k].copy()) for k in arrays.files}
    state = {k.removeprefix("param:"): v for k, v in data.items() if k.startswith("param:")}
    d, max_len = int(kwargs["d_model"]), int(kwargs["l_max"])
    knobs: dict[str, KnobValue]
    if GOLDEN_FAMILIES[name] == "h3":
        knobs = {"d_state": int(kwargs["d_state"]), "head_dim": int(kwargs["head_dim"])}
        params = h3_from_reference(state, d_model=d, **knobs)  # type: ignore[arg-type]
    else:
        knobs = {}
        params = hyena_from_reference(state, d_model=d, l_max=max_len)
    mixer = family_class(GOLDEN_FAMILIES[name])(d, max_len, [knobs], [torch.Generator().manual_seed(0)])
    mixer = mixer.to(torch.float64)
    load_run(mixer, 0, params)
    aux = {k.removeprefix("aux:"): v for k, v in data.items() if k.startswith("aux:")}
    return GoldenCase(name, mixer, data["x"], data["y"], aux, entry)
