"""Running a sweep on one device: groups of runs trained as stacks, one record per run, resumable.

Groups, not runs, are the unit of work: a group's records are written only after the whole group has finished, so an
interrupted sweep never records a partial run, and a rerun skips every run whose ``run_id`` is already in the results
file. What happens meanwhile is reported to observers (:mod:`mqarkit.gpu.frontier.observers`): by default the log
lines of :class:`~mqarkit.gpu.frontier.observers.EpochLog`; a progress bar or a tracker where the caller asks.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import math
import platform
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from mqarkit.gpu.device import resolve_device, triton_version
from mqarkit.gpu.frontier.checkpoints import StackCheckpoint, stack_key, stacks_folder
from mqarkit.gpu.frontier.data import make_segments
from mqarkit.gpu.frontier.determinism import check_environment, check_flag, deterministic_enabled, deterministic_mode
from mqarkit.gpu.frontier.model import StackedHybrid, compile_enabled, state_numbers
from mqarkit.gpu.frontier.observers import EpochLog, StackObserver, stack_name
from mqarkit.gpu.frontier.records import RecordsStore, append_records, done_run_ids
from mqarkit.gpu.frontier.sweep import STATE_BYTES_PER_NUMBER, RunSpec, SweepConfig, groups

if TYPE_CHECKING:
    from mqarkit.gpu.frontier.projection import TimeBudget
    from mqarkit.gpu.frontier.steps import SegmentData
    from mqarkit.gpu.frontier.tracking import Tracking


def environment(device: torch.device) -> dict:
    """Git commit, device name, library versions and the mode (``deterministic``: :mod:`.determinism`) for a
    record."""
    from mqarkit.gpu.frontier.cuda_graphs import graphs_enabled

    commit = _git("rev-parse", "HEAD") or "unknown"
    changes = _git("status", "--porcelain", "--untracked-files=no")
    dirty = None if changes is None else bool(changes)  # tracked files differ from the commit: it is not the code
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "source_digest": source_digest(),
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "triton": triton_version(),
        "python": sys.version.split()[0],
        "cuda_graphs": graphs_enabled(device),
        "compile": device.type == "cuda" and compile_enabled(),
        "deterministic": deterministic_enabled(),
    }


def environment_line(report: dict) -> str:
    """The line a benchmark's table opens with, from its ``report["env"]`` (:func:`environment`) and
    ``report["command"]``: device, torch, triton, the commit (marked where the tracked files differed from it) and
    the command."""
    env = report["env"]
    dirty = " (uncommitted changes)" if env.get("git_dirty") else ""
    return (
        f"Device: {env['device']}; torch {env['torch']}; triton {env.get('triton') or 'n/a'}; commit "
        f"{env['git_commit'][:10]}{dirty}. Command: `{report['command']}`."
    )


def source_roots() -> tuple[Path, ...]:
    """The folders of the Python sources a training run executes: the ``mqarkit`` package and its GPU wing
    (``mqarkit.gpu``, a folder of its own in a checkout, inside the package when installed)."""
    import mqarkit
    import mqarkit.gpu

    package, wing = (Path(m.__file__).resolve().parent for m in (mqarkit, mqarkit.gpu))
    return (package,) if wing.is_relative_to(package) else (package, wing)


@functools.cache
def source_digest(roots: tuple[Path, ...] | None = None) -> str:
    """``sha256:<hex>`` of the ``.py`` files under ``roots`` (their paths relative to each root, then their bytes, in
    sorted order): names the code that ran where git's metadata is absent or stale (a copy of a working tree without
    its ``.git``, or with an old one). ``python -c "from mqarkit.gpu.frontier.runner import source_digest as s;
    print(s())"`` in a checkout says whether it is that code."""
    h = hashlib.sha256()
    for root in roots or source_roots():
        for path in sorted(root.rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return f"sha256:{h.hexdigest()}"


def _git(*args: str) -> str | None:
    """``git <args>`` in this package's folder: its stripped output, or None when git cannot answer."""
    try:
        proc = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


# ---------------------------------------------------------------- running
def _group_seed(sweep: SweepConfig, group: list[RunSpec]) -> int:
    text = f"{sweep.data_seed}|{group[0].model.stack_key()!r}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "little")


def make_data(sweep: SweepConfig, device: torch.device) -> tuple[list[SegmentData], list[SegmentData]]:
    from mqarkit.gpu.frontier.steps import SegmentData

    g = torch.Generator(device=device).manual_seed(sweep.data_seed)
    train = [SegmentData(*t) for t in make_segments(sweep.vocab_size, list(sweep.train), generator=g)]
    test = [SegmentData(*t) for t in make_segments(sweep.vocab_size, list(sweep.test), generator=g)]
    return train, test


@dataclass(frozen=True)
class SweepData:
    """A sweep's generated segments (on one device) and the seconds their generation took.

    The data depend on ``data_seed`` and on the *type* of device they were generated on (torch's CPU and CUDA
    generators draw different streams), not on which device of that type: data generated once and moved (as the Ray
    launcher does) equal the data each device would have generated."""

    train: list[SegmentData]
    test: list[SegmentData]
    seconds: float

    def to(self, device: str | torch.device) -> SweepData:
        """The same segments on ``device``."""
        from mqarkit.gpu.frontier.steps import SegmentData

        def move(segments: list[SegmentData]) -> list[SegmentData]:
            return [SegmentData(s.segment, s.inputs.to(device), s.labels.to(device)) for s in segments]

        return SweepData(move(self.train), move(self.test), self.seconds)


def prepare_data(sweep: SweepConfig, device: str | torch.device) -> SweepData:
    """:func:`make_data`, timed (to the end of the device's work)."""
    device = torch.device(device)
    t0 = time.perf_counter()
    train, test = make_data(sweep, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return SweepData(train, test, time.perf_counter() - t0)


def run_groups(
    sweep: SweepConfig,
    run_ids: set[str] | None,
    device: str | torch.device,
    log: Callable[[str], None] = print,
    *,
    observers: Sequence[StackObserver] | None = None,
    tracking: Tracking | None = None,
    data: SweepData | None = None,
    checkpoint_dir: str | Path | None = None,
    out_of_memory: list[str] | None = None,
    budget: TimeBudget | None = None,
    not_started: list[str] | None = None,
) -> Iterator[list[dict]]:
    """Train the groups holding ``run_ids`` (all runs when None); yield each finished group's records.

    ``observers``: told of each stack's start, epochs and end (default: :class:`EpochLog` on ``log``). ``tracking``:
    a tracker to build here and add to them (:mod:`mqarkit.gpu.frontier.tracking`). ``data``: the sweep's data,
    generated earlier (moved to ``device`` here); by default generated here. ``checkpoint_dir``: keep each stack's
    training state there while it trains (:mod:`mqarkit.gpu.frontier.checkpoints`: a stack stopped between epochs
    continues on the next call); a stack's file is deleted once the caller has taken its records (this generator
    resumes only then). ``out_of_memory``: where given, a stack that runs out of device memory has its memory freed
    and, if it has more than one run, is split into two stacks of half its runs each (:func:`split_stack`), trained
    next (a run's data order and initialisation do not depend on its stack-mates, so its result does not change but
    for floating-point reduction order); a stack of one run that runs out is skipped (a line appended to the list,
    no records: its run stays to do) and the next one trains. Without the list the error propagates. ``budget``:
    asked before each stack whether it may start (:class:`~mqarkit.gpu.frontier.projection.TimeBudget`); a stack it
    refuses is logged, appended to ``not_started`` where given, and left to do (it is not started, so observers hear
    nothing of it)."""
    from mqarkit.gpu.frontier.train import train_stack

    sweep.validate()
    device = torch.device(device)
    todo = deque(groups(sweep, run_ids))
    if not todo:
        return
    watchers = [EpochLog(log)] if observers is None else list(observers)
    if tracking is not None:
        watchers.append(tracking.observer())
    env = environment(device)
    data = prepare_data(sweep, device) if data is None else data.to(device)
    train, test, data_seconds = data.train, data.test, data.seconds
    log(f"[{sweep.name}] data on {env['device']}: {data_seconds:.1f} s; {len(todo)} groups")
    longest = max(test, key=lambda s: s.inputs.shape[1])
    while todo:
        group = todo.popleft()
        ckpt = None
        if checkpoint_dir is not None:
            stack = _stack_fields(sweep, group, device)
            name, key = stack_key(stack), stack_key({**stack, "code": source_digest()})
            ckpt = StackCheckpoint(checkpoint_dir, name, key, log=log)
        refusal = None if budget is None else budget.refusal(sweep, group, resuming=ckpt is not None and ckpt.exists())
        if refusal is not None:
            log(f"[{sweep.name}] {stack_name(group)}: not started ({refusal}); its runs stay to do")
            if not_started is not None:
                not_started.append(f"{sweep.name} {stack_name(group)}")
            continue
        for w in watchers:
            w.stack_started(sweep, group)
        t1 = time.perf_counter()
        model = StackedHybrid([r.model for r in group], [r.init_seed() for r in group], device)
        gen = torch.Generator(device=device).manual_seed(_group_seed(sweep, group))
        try:
            res = train_stack(
                model,
                [r.lr for r in group],
                train,
                test,
                epochs=sweep.epochs,
                generator=gen,
                batch_size=sweep.batch_size,
                test_batch_size=sweep.test_batch_size,
                early_stop=sweep.early_stop,
                schedule=sweep.lr_schedule,
                on_epoch=lambda report, g=group: [w.epoch_ended(sweep, g, report) for w in watchers],
                checkpoint=ckpt,
            )
        except torch.OutOfMemoryError as error:
            if out_of_memory is None:
                raise
            reason = _first_sentence(error)
        else:
            reason = None
        if reason is not None:  # the error, its frames and the stack's model and graphs are gone: free their memory
            model = None
            _release_memory(device)
            if len(group) > 1:
                parts = split_stack(group)
                todo.extendleft(reversed(parts))
                if ckpt is not None:  # its runs train in the parts now; a saved state of the whole is never resumed
                    ckpt.remove()
                sizes = " and ".join(str(len(part)) for part in parts)
                log(
                    f"[{sweep.name}] {stack_name(group)}: out of device memory ({reason}); its {len(group)} runs split "
                    f"into stacks of {sizes}, trained next"
                )
                for w in watchers:
                    w.stack_split(sweep, group, parts, reason)
                continue
            out_of_memory.append(f"{sweep.name} {stack_name(group)}: {reason}")
            log(f"[{sweep.name}] {stack_name(group)}: out of device memory ({reason}); no records, its runs stay to do")
            for w in watchers:
                w.stack_failed(sweep, group, reason)
            continue
        wall = time.perf_counter() - t1
        for w in watchers:
            w.stack_finished(sweep, group, res)
        records = []
        for i, run in enumerate(group):
            states, how = model.final_state(i, longest.inputs[0])
            numbers = state_numbers(states) if states else None
            records.append(
                {
                    "status": "finished" if res.diverged_at[i] is None else "diverged",
                    "diverged_at_epoch": res.diverged_at[i],
                    "last_finite_loss": next((x for x in reversed(res.loss_history[i]) if math.isfinite(x)), None),
                    "run_id": run.run_id,
                    "sweep": sweep.name,
                    "family": run.model.family,
                    "model": run.model.to_dict(),
                    "lr": run.lr,
                    "seed": run.seed,
                    "init_seed": run.init_seed(),
                    "data_seed": sweep.data_seed,
                    "epochs_max": sweep.epochs,
                    "epochs_trained": res.epochs[i],
                    "batch_size": sweep.batch_size,
                    "early_stop": sweep.early_stop,
                    "lr_schedule": sweep.lr_schedule,
                    "notes": list(sweep.notes),
                    "accuracy": [
                        {
                            "seq_len": s.seq_len,
                            "num_kv_pairs": s.num_kv_pairs,
                            "num_examples": s.num_examples,
                            "accuracy": a,
                        }
                        for s, a in zip(sweep.test, res.accuracy[i])
                    ],
                    "overall_accuracy": res.overall[i],
                    "history": res.history[i],
                    "loss_history": res.loss_history[i],
                    "state_numbers": numbers,
                    "state_bytes": None if numbers is None else numbers * STATE_BYTES_PER_NUMBER,
                    "state_measured": numbers is not None,
                    "state_source": how,
                    "state_reported_numbers": model.mixer.reported_state(i, longest.inputs.shape[1]),
                    "state_measured_at_seq_len": longest.inputs.shape[1],
                    "state_tensors": {k: list(v.shape) for k, v in states.items()},
                    "stack_size": len(group),
                    "max_stack_runs": sweep.max_stack_runs,  # None: the whole group was one stack
                    "stack_wall_seconds": wall,
                    "stack_train_seconds": res.train_seconds,
                    "stack_steps": res.steps,
                    "resumed_from_epoch": res.resumed_from_epoch,
                    "trained_on": res.devices,
                    "data_seconds": data_seconds,
                    **env,
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
        resumed = "" if res.resumed_from_epoch is None else f" (resumed after epoch {res.resumed_from_epoch})"
        log(
            f"[{sweep.name}] {stack_name(group)}: {len(group)} runs, {wall:.1f} s{resumed}, best {max(res.overall):.3f}"
        )
        yield records
        if ckpt is not None:
            ckpt.remove()


def _stack_fields(sweep: SweepConfig, group: list[RunSpec], device: torch.device) -> dict:
    """What a stack's saved state must match besides the code: its runs, their models, seeds and learning rates, the
    sweep's data and training settings, and the device type."""
    return {
        "sweep": sweep.name,
        "runs": [[r.run_id, r.model.to_dict(), r.lr, r.init_seed()] for r in group],
        "group_seed": _group_seed(sweep, group),
        "epochs": sweep.epochs,
        "batch": [sweep.batch_size, sweep.test_batch_size, sweep.early_stop],
        "lr_schedule": sweep.lr_schedule,
        "data": [sweep.data_seed, [str(s) for s in sweep.train], [str(s) for s in sweep.test]],
        "device_type": device.type,
    }


def pending(sweeps: list[SweepConfig], out: str | Path) -> list[tuple[SweepConfig, set[str]]]:
    done = done_run_ids(out)
    return [(sw, {r.run_id for r in sw.runs()} - done) for sw in sweeps]


def run_sweeps(
    sweeps: list[SweepConfig],
    out: str | Path,
    device: str | torch.device = "cpu",
    *,
    worker: int = 0,
    num_workers: int = 1,
    log: Callable[[str], None] = print,
    observers: Sequence[StackObserver] | None = None,
    tracking: Tracking | None = None,
    deterministic: bool = False,
    budget: TimeBudget | None = None,
) -> int:
    """Run every unfinished run (this worker's share of the groups), appending records to ``out``; returns the
    number of runs recorded now. Before any work: the sweeps are validated, ``out`` is checked writable, and (worker
    0) the log says how many runs ``out`` already holds and how many are left to do. ``observers`` and ``tracking``:
    see :func:`run_groups` (each observer is first told the plan: this worker's stacks). ``deterministic``: train in
    deterministic mode (:func:`~mqarkit.gpu.frontier.determinism.deterministic_mode`, for this call; every record
    says under which mode it was made). ``budget``: the stacks it refuses are not started (:func:`run_groups`); the
    log says how many."""
    if not (0 <= worker < num_workers):
        raise ValueError(f"worker={worker}: needs 0 <= worker < num_workers={num_workers}")
    if check_flag(deterministic):
        check_environment()
    for sw in sweeps:
        sw.validate()
    if tracking is not None:
        tracking.validate()
    resolve_device(device)  # a device this machine has (an error naming it), before any work
    store = RecordsStore(out)
    store.check_writable()
    if worker == 0:
        log(store.resume_report(r.run_id for sw in sweeps for r in sw.runs()).line(out))
    shares = [(sw, _share(sw, todo, worker, num_workers)) for sw, todo in pending(sweeps, out)]
    for w in observers or ():
        w.planned([(sw, g) for sw, mine in shares for g in groups(sw, mine)])
    count, out_of_memory, not_started = 0, [], []
    with deterministic_mode(deterministic):
        for sw, mine in shares:
            stacks = run_groups(
                sw,
                mine,
                device,
                log,
                observers=observers,
                tracking=tracking,
                checkpoint_dir=stacks_folder(out),
                out_of_memory=out_of_memory,
                budget=budget,
                not_started=not_started,
            )
            for records in stacks:
                written = append_records(out, records, log=log).written
                count += written
                log(f"[{sw.name}] {written} records written")
    if not_started:
        log(f"{len(not_started)} stacks not started within the time budget; a rerun on the same results trains them")
    if out_of_memory:
        raise StacksOutOfMemory(count, out_of_memory)
    return count


class StacksOutOfMemory(RuntimeError):
    """Stacks that ran out of device memory while the others trained and were recorded (``written`` runs): their
    runs have no records, so a rerun on the same results file trains them (from their last saved epoch)."""

    def __init__(self, written: int, stacks: list[str]) -> None:
        self.written, self.stacks = written, stacks
        super().__init__(
            f"{len(stacks)} stack(s) ran out of device memory and have no records ({written} runs recorded); a "
            "rerun with the same results file trains them again: " + "; ".join(stacks)
        )


def split_stack(group: list[RunSpec]) -> list[list[RunSpec]]:
    """A stack of two or more runs that ran out of device memory, as two stacks of its runs in order: the first
    half (one more run where the count is odd) and the rest."""
    if len(group) < 2:
        raise ValueError(f"split_stack: needs a stack of at least 2 runs, got {len(group)}")
    half = (len(group) + 1) // 2
    return [group[:half], group[half:]]


def _first_sentence(error: BaseException) -> str:
    """What an out-of-memory error says first (torch's: what it tried to allocate and what was free)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(". Including")[0]


def _release_memory(device: torch.device) -> None:
    """Free what a failed stack held: its objects (reference cycles included), then the allocator's cached blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _share(sweep: SweepConfig, todo: set[str], worker: int, num_workers: int) -> set[str]:
    """The run ids of the groups of ``todo`` dealt to ``worker`` (round robin over the groups)."""
    return {r.run_id for gi, g in enumerate(groups(sweep, todo)) if gi % num_workers == worker for r in g}


def elapsed_log(started: float, prefix: str = "") -> Callable[[str], None]:
    """A ``log`` that stamps each line with the seconds since ``started`` (a ``time.time()``): where a sweep's wall
    clock goes (process start and imports, data, each stack, records) reads off the log."""
    return lambda line: print(f"[+{time.time() - started:6.1f} s] {prefix}{line}", flush=True)


def run(
    sweeps: SweepConfig | list[SweepConfig],
    out: str | Path,
    device: str | torch.device | None = None,
    *,
    log: Callable[[str], None] = print,
    observers: Sequence[StackObserver] | None = None,
    tracking: Tracking | None = None,
    deterministic: bool = False,
) -> int:
    """Run ``sweeps`` (one or a list) into the results file ``out`` on ``device`` (default: CUDA if available, else
    the CPU), skipping the runs already recorded there; returns the number of runs recorded now. For notebooks;
    ``mqarkit frontier run`` is the same on the command line (``observers``, ``tracking``: see :func:`run_groups`;
    ``deterministic``: see :func:`run_sweeps`; in a process that has used CUDA already it needs
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set before that)."""
    sweeps = [sweeps] if isinstance(sweeps, SweepConfig) else list(sweeps)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return run_sweeps(sweeps, out, device, log=log, observers=observers, tracking=tracking, deterministic=deterministic)
