"""What one example costs each family's stacked mixer in memory, measured, beside the ``intermediate_elements``
estimate that micro-batching divides its budget by (``steps.micro_batch``: ``budget // Σ estimates``).

For every registered family, the stack of the speed table (``frontier_speed.FAMILY_KNOBS``: the knob settings of its
preset stack, one run each) at width ``--width``: the mixer alone, forward and backward at the longest training length
of ``--data-preset`` (``train``), and forward without gradients at its longest test length (``eval``), each at two batch
sizes. The memory of one example is the difference of the two peaks over the difference of the batches, so what does not
grow with the batch (parameters, a Toeplitz matrix) drops out. Peak: on CUDA ``max_memory_allocated``; elsewhere the
largest sum of the sizes of the live storages the mixer's operations created (a dispatch mode that adds each output's
storage once and subtracts it when the storage is freed). The estimate counts elements; its bytes are taken at 4 a
element (float32, what most intermediates of the paths hold). Both passes run in the harness's precision
(``ops.training_autocast``: bf16 autocast on CUDA, float32 elsewhere), so on CUDA the paths are the ones training takes.
``measured / estimate`` is how many estimates' worth of memory an example holds at the peak: the budget bounds memory
only through it.

    python benchmarks/micro_batch_memory.py [--device cpu|cuda] [--width 64] [--out-dir docs/results]

Writes ``micro_batch_memory.json`` and ``micro_batch_memory.md`` under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import weakref
from pathlib import Path

import torch
from frontier_speed import FAMILY_KNOBS
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.families import FAMILIES
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.ops import training_autocast
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.runner import environment

BATCHES = (2, 6)  # the two batch sizes whose peaks are compared
ESTIMATE_BYTES = 4  # bytes of one estimated element (float32)


class LiveStorages(TorchDispatchMode):
    """The peak of the summed sizes (bytes) of the live storages that operations under it created (an output
    aliasing one of its inputs' storages adds nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.now = self.peak = 0

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or key in self.live:  # a view of a storage already counted
            return
        self.live[key] = size
        self.now += size
        self.peak = max(self.peak, self.now)
        weakref.finalize(storage, self._remove, key)

    def _remove(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:  # an output sharing an input's storage (a view, in place) is not new memory
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self._add(t)
        return out


def peak_bytes(mixer: torch.nn.Module, u: torch.Tensor, train: bool) -> int:
    """Peak memory of one forward (and backward, if ``train``) of ``mixer`` on ``u (R, B, N, d)``, in bytes, above
    what was allocated before it (CUDA) or created under it (elsewhere)."""
    if u.device.type == "cuda":
        torch.cuda.synchronize(u.device)
        torch.cuda.reset_peak_memory_stats(u.device)
        before = torch.cuda.memory_allocated(u.device)
        _pass(mixer, u, train)
        torch.cuda.synchronize(u.device)
        return torch.cuda.max_memory_allocated(u.device) - before
    with LiveStorages() as live:
        _pass(mixer, u, train)
    return live.peak


def _pass(mixer: torch.nn.Module, u: torch.Tensor, train: bool) -> None:
    """One forward (and backward) in the precision training and evaluation use (bf16 autocast on CUDA); parameter
    gradients start absent each time, so both batches pay for them alike and the difference drops them."""
    mixer.zero_grad(set_to_none=True)
    with training_autocast(u.device):
        if train:
            mixer(u.requires_grad_()).float().sum().backward()
        else:
            with torch.no_grad():
                mixer(u)


def measure(family: str, width: int, seq_len: int, train: bool, device: torch.device, max_len: int) -> dict:
    """One row: the family's stack at ``width``, bytes per example at ``seq_len`` against its estimate."""
    knobs = FAMILY_KNOBS[family].settings(width)
    configs = [ModelConfig(family, width, vocab_size=256, max_len=max_len, knobs=k) for k in knobs]
    mixer = StackedHybrid(configs, list(range(len(configs))), device).mixer
    g = torch.Generator().manual_seed(0)
    peaks = [
        peak_bytes(mixer, torch.randn(len(configs), b, seq_len, width, generator=g).to(device), train) for b in BATCHES
    ]
    per_example = (peaks[1] - peaks[0]) / (BATCHES[1] - BATCHES[0])
    estimate = mixer.intermediate_elements(seq_len)
    return {
        "family": family,
        "knobs": knobs,
        "seq_len": seq_len,
        "mode": "train" if train else "eval",
        "bytes_per_example": per_example,
        "estimate_elements": estimate,
        "measured_over_estimate": per_example / (ESTIMATE_BYTES * estimate),
    }


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "micro_batch_memory.json").write_text(json.dumps(report, indent=1) + "\n")
    env = report["env"]
    lines = [
        "# Micro-batching: the memory of one example against the estimate\n",
        f"Device: {env['device']}; torch {env['torch']}; commit {env['git_commit'][:10]}"
        + (" (uncommitted changes)" if env.get("git_dirty") else "")
        + f". Command: `{report['command']}`. Each family's speed-table stack at d = {report['width']} (one run per "
        f"knob setting), the mixer alone; per example = the difference of the peaks at batches {BATCHES} over "
        f"{BATCHES[1] - BATCHES[0]}; estimate = `intermediate_elements` (all runs), at {ESTIMATE_BYTES} bytes an "
        "element in the ratio. Paths are the device's: on a CPU the plain-torch forms, on CUDA the fast paths.\n",
        "| family | runs | mode | N | measured (MiB / example) | estimate (M elements) | measured / estimate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| `{r['family']}` | {len(r['knobs'])} | {r['mode']} | {r['seq_len']} | "
            f"{r['bytes_per_example'] / 2**20:.2f} | {r['estimate_elements'] / 1e6:.3f} | "
            f"{r['measured_over_estimate']:.2f} |"
        )
    (out / "micro_batch_memory.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--width", type=int, default=64, help="d_model of every stack (default 64)")
    ap.add_argument("--data-preset", default="based-fig2", help="the preset whose longest lengths are used")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), help="registered family names (default all)")
    ap.add_argument("--out-dir", default="docs/results")
    args = ap.parse_args(argv)
    unknown = [f for f in args.families if f not in FAMILIES]
    if unknown:
        ap.error(f"--families: {unknown} not registered; choose from {', '.join(FAMILIES)}")
    if args.width < 1:
        ap.error(f"--width={args.width}: needs an integer >= 1")
    (sweep,) = get_preset(args.data_preset)
    train_len, eval_len = max(s.seq_len for s in sweep.train), max(s.seq_len for s in sweep.test)
    device = torch.device(args.device)
    report = {
        "env": environment(device),
        "command": "python benchmarks/micro_batch_memory.py " + " ".join(argv),
        "width": args.width,
        "batches": list(BATCHES),
        "rows": [],
    }
    for family in args.families:
        for seq_len, train in ((train_len, True), (eval_len, False)):
            row = measure(family, args.width, seq_len, train, device, max(train_len, eval_len))
            report["rows"].append(row)
            print(
                f"{family:>16} {row['mode']:>5} N={seq_len:<5} {row['bytes_per_example'] / 2**20:8.2f} MiB/example  "
                f"estimate {row['estimate_elements'] / 1e6:8.3f} M  ratio {row['measured_over_estimate']:.2f}",
                flush=True,
            )
    write(report, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
