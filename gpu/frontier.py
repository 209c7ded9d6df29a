"""Frontier sweeps: presets, the runner, JSONL records, resumability, and the multi-GPU and Ray launchers.

A *sweep* is one data set (training and test segments, generated on the device from ``seed``) and a list of runs (a
model config × a learning rate). A *preset* is a list of sweeps. Runs of one sweep that share
:meth:`ModelConfig.stack_key` form a *group* trained as one stacked computation; groups, not runs, are the unit of
work: a group's records are written only after the whole group has finished, so an interrupted sweep never records a
partial run, and a rerun skips every run whose ``run_id`` is already in the results file.

Writes are atomic: the new file content goes to a temporary file in the same folder, is fsync'ed and ``os.replace``'d
over the old one. Readers ignore lines that do not parse (none should exist).

Reproducibility: the data depend on ``sweep.seed`` only; a run's initial weights on its ``run_id`` and seed only; the
batch order of a group on the seed and the group key; so the same run gets the same result whichever worker trains it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mqarkit.gpu.data import Segment, make_segments
from mqarkit.gpu.stacked import ModelConfig, StackedHybrid, compile_enabled, state_numbers

if TYPE_CHECKING:
    from mqarkit.gpu.train import SegmentData

# The training modules (and through them triton) load where a run trains, not at import: the parent of
# run_multiprocess only reads presets and records. The workers get them preloaded (see run_multiprocess). Not
# torch._dynamo / torch._inductor: importing them initialises the CUDA driver (seen with torch 2.11 on an H100), which
# would break every worker forked from the server.
WORKER_PRELOAD = ("mqarkit.gpu.frontier", "mqarkit.gpu.train", "mqarkit.gpu.cuda_graphs")

STATE_BYTES_PER_NUMBER = 4  # the unit of the reference (float32); records give numbers and bytes
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


@dataclass(frozen=True)
class RunSpec:
    sweep: str
    model: ModelConfig
    lr: float
    seed: int

    @property
    def run_id(self) -> str:
        m = self.model
        knob = {"based": f"-f{m.feature_dim}", "sliding_window": f"-w{m.window}", "ssm": f"-n{m.d_state}"}
        tie = "" if m.tie_head else "-untied"
        return f"{self.sweep}/{m.family}-d{m.d_model}{knob.get(m.family, '')}{tie}-lr{self.lr:.3e}-s{self.seed}"

    def init_seed(self) -> int:
        return int.from_bytes(hashlib.sha256(self.run_id.encode()).digest()[:7], "little")


@dataclass(frozen=True)
class SweepConfig:
    name: str
    models: tuple[ModelConfig, ...]
    lrs: tuple[float, ...]
    epochs: int
    train: tuple[Segment, ...]
    test: tuple[Segment, ...]
    vocab_size: int = 8192
    batch_size: int = 256
    test_batch_size: int = 256
    seed: int = 0
    early_stop: float = 0.99
    notes: tuple[str, ...] = field(default=())

    def validate(self) -> None:
        """Every rule checked before any device time is spent."""
        if not self.name or "/" in self.name:
            raise ValueError(f"name={self.name!r}: needs a non-empty name without '/'")
        if not self.models:
            raise ValueError(f"models: sweep {self.name!r} has no models")
        if not self.lrs or any(not (lr > 0 and np.isfinite(lr)) for lr in self.lrs):
            raise ValueError(f"lrs={self.lrs}: needs at least one finite learning rate > 0")
        for key, value in (
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("test_batch_size", self.test_batch_size),
        ):
            if value < 1:
                raise ValueError(f"{key}={value}: needs {key} >= 1")
        if not (0 < self.early_stop <= 1):
            raise ValueError(f"early_stop={self.early_stop}: needs 0 < early_stop <= 1")
        if not self.train or not self.test:
            raise ValueError(f"train/test: sweep {self.name!r} needs training and test segments")
        longest = max(s.seq_len for s in self.train + self.test)
        for seg in self.train + self.test:
            seg.validate(self.vocab_size)
        for m in self.models:
            m.validate()
            if m.vocab_size != self.vocab_size:
                raise ValueError(f"vocab_size={m.vocab_size}: model differs from the sweep's {self.vocab_size}")
            if m.max_len < longest:
                raise ValueError(f"max_len={m.max_len}: needs max_len >= the longest sequence {longest}")
        ids = [r.run_id for r in self.runs()]
        if len(set(ids)) != len(ids):
            raise ValueError(f"models: sweep {self.name!r} lists a run twice")

    def runs(self) -> list[RunSpec]:
        return [RunSpec(self.name, m, lr, self.seed) for m in self.models for lr in self.lrs]


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


# ---------------------------------------------------------------- records
def read_records(path: str | Path) -> list[dict]:
    """All complete records of a JSONL file (missing file: none)."""
    p = Path(path)
    if not p.exists():
        return []
    records = []
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("status") == "finished" and "run_id" in rec:
            records.append(rec)
    return records


def append_records(path: str | Path, records: list[dict]) -> None:
    """Atomically replace ``path`` by its old records plus ``records`` (deduplicated by ``run_id``, first wins)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    old = read_records(p)
    seen = {r["run_id"] for r in old}
    merged = old + [r for r in records if r["run_id"] not in seen]
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            for rec in merged:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def environment(device: torch.device) -> dict:
    """Git commit, device name and library versions for a record."""
    from mqarkit.gpu.cuda_graphs import graphs_enabled

    commit = _git("rev-parse", "HEAD") or "unknown"
    changes = _git("status", "--porcelain", "--untracked-files=no")
    dirty = None if changes is None else bool(changes)  # tracked files differ from the commit: it is not the code
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "triton": triton_version,
        "python": sys.version.split()[0],
        "cuda_graphs": graphs_enabled(device),
        "compile": device.type == "cuda" and compile_enabled(),
    }


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
def groups(sweep: SweepConfig, run_ids: set[str] | None = None) -> list[list[RunSpec]]:
    """The sweep's runs (restricted to ``run_ids``) grouped by stack key, in a fixed order."""
    by_key: dict[tuple, list[RunSpec]] = {}
    for run in sweep.runs():
        if run_ids is None or run.run_id in run_ids:
            by_key.setdefault(run.model.stack_key(), []).append(run)
    return [by_key[k] for k in sorted(by_key, key=repr)]


def _group_seed(sweep: SweepConfig, group: list[RunSpec]) -> int:
    text = f"{sweep.seed}|{group[0].model.stack_key()!r}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "little")


def make_data(sweep: SweepConfig, device: torch.device) -> tuple[list[SegmentData], list[SegmentData]]:
    from mqarkit.gpu.train import SegmentData

    g = torch.Generator(device=device).manual_seed(sweep.seed)
    train = [SegmentData(*t) for t in make_segments(sweep.vocab_size, list(sweep.train), generator=g)]
    test = [SegmentData(*t) for t in make_segments(sweep.vocab_size, list(sweep.test), generator=g)]
    return train, test


def run_groups(
    sweep: SweepConfig, run_ids: set[str] | None, device: str | torch.device, log: Callable[[str], None] = print
) -> Iterator[list[dict]]:
    """Train the groups holding ``run_ids`` (all runs when None); yield each finished group's records."""
    from mqarkit.gpu.train import train_stack

    sweep.validate()
    device = torch.device(device)
    todo = groups(sweep, run_ids)
    if not todo:
        return
    env = environment(device)
    t0 = time.perf_counter()
    train, test = make_data(sweep, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    data_seconds = time.perf_counter() - t0
    log(f"[{sweep.name}] data on {env['device']}: {data_seconds:.1f} s; {len(todo)} groups")
    longest = max(test, key=lambda s: s.inputs.shape[1])
    for group in todo:
        t1 = time.perf_counter()
        model = StackedHybrid([r.model for r in group], [r.init_seed() for r in group], device)
        gen = torch.Generator(device=device).manual_seed(_group_seed(sweep, group))
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
            on_epoch=lambda e, overall, g=group: _log_epoch(log, sweep, g, e, overall),
        )
        wall = time.perf_counter() - t1
        records = []
        for i, run in enumerate(group):
            states = model.final_state(i, longest.inputs[0])
            numbers = state_numbers(states)
            records.append(
                {
                    "status": "finished",
                    "run_id": run.run_id,
                    "sweep": sweep.name,
                    "family": run.model.family,
                    "model": run.model.to_dict(),
                    "lr": run.lr,
                    "seed": run.seed,
                    "init_seed": run.init_seed(),
                    "data_seed": sweep.seed,
                    "epochs_max": sweep.epochs,
                    "epochs_trained": res.epochs[i],
                    "batch_size": sweep.batch_size,
                    "early_stop": sweep.early_stop,
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
                    "state_numbers": numbers,
                    "state_bytes": numbers * STATE_BYTES_PER_NUMBER,
                    "state_measured_at_seq_len": longest.inputs.shape[1],
                    "state_tensors": {k: list(v.shape) for k, v in states.items()},
                    "stack_size": len(group),
                    "stack_wall_seconds": wall,
                    "stack_train_seconds": res.train_seconds,
                    "stack_steps": res.steps,
                    "data_seconds": data_seconds,
                    **env,
                    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                }
            )
        log(
            f"[{sweep.name}] {group[0].model.family} d={group[0].model.d_model}: {len(group)} runs, {wall:.1f} s, "
            f"best {max(res.overall):.3f}"
        )
        yield records


def _log_epoch(log: Callable[[str], None], sweep: SweepConfig, group: list[RunSpec], epoch: int, overall: list) -> None:
    """Epoch 1 (its time holds compilation and graph capture), every 8th and the last: the stack's best accuracy."""
    if epoch == 1 or epoch % 8 == 0 or epoch == sweep.epochs:
        m = group[0].model
        log(f"[{sweep.name}] {m.family} d={m.d_model}: epoch {epoch}/{sweep.epochs}, best {max(overall):.3f}")


def pending(sweeps: list[SweepConfig], out: str | Path) -> list[tuple[SweepConfig, set[str]]]:
    done = {r["run_id"] for r in read_records(out)}
    return [(sw, {r.run_id for r in sw.runs()} - done) for sw in sweeps]


def run_sweeps(
    sweeps: list[SweepConfig],
    out: str | Path,
    device: str | torch.device = "cpu",
    *,
    worker: int = 0,
    num_workers: int = 1,
    log: Callable[[str], None] = print,
) -> int:
    """Run every unfinished run (this worker's share of the groups), appending records to ``out``; returns the
    number of runs recorded now."""
    if not (0 <= worker < num_workers):
        raise ValueError(f"worker={worker}: needs 0 <= worker < num_workers={num_workers}")
    for sw in sweeps:
        sw.validate()
    count = 0
    for sw, todo in pending(sweeps, out):
        mine = {r.run_id for gi, g in enumerate(groups(sw, todo)) if gi % num_workers == worker for r in g}
        for records in run_groups(sw, mine, device, log):
            append_records(out, records)
            count += len(records)
            log(f"[{sw.name}] {len(records)} records written (state measured)")
    return count


def elapsed_log(started: float, prefix: str = "") -> Callable[[str], None]:
    """A ``log`` that stamps each line with the seconds since ``started`` (a ``time.time()``): where a sweep's wall
    clock goes (process start and imports, data, each stack, records) reads off the log."""
    return lambda line: print(f"[+{time.time() - started:6.1f} s] {prefix}{line}", flush=True)


def _worker_main(
    preset_kwargs: dict, out: str, device: str, worker: int, num_workers: int, started: float | None = None
) -> None:
    log = elapsed_log(time.time() if started is None else started, f"[worker {worker} on {device}] ")
    log("started (imports done)")
    sweeps = get_preset(**preset_kwargs)
    run_sweeps(sweeps, out, device, worker=worker, num_workers=num_workers, log=log)


def shard_path(out: str | Path, worker: int) -> Path:
    p = Path(out)
    return p.with_name(f"{p.stem}.worker{worker}{p.suffix}")


def run_multiprocess(preset_kwargs: dict, out: str | Path, devices: list[str], *, started: float | None = None) -> int:
    """One worker process per entry of ``devices`` (e.g. ``["cuda:0", "cuda:1"]``; a device named several times gets
    several workers, which share it); groups partitioned round-robin; each worker writes its shard (resumable on its
    own); the shards are merged into ``out`` at the end. Returns runs merged. ``started``: the ``time.time()`` the log's
    stamps count from (default: now).

    Workers start through the "forkserver" method where the platform has it (else "spawn"): a fresh server process
    imports torch and the training modules (:data:`WORKER_PRELOAD`) once and forks every worker from itself, so a
    worker starts without re-importing them (under "spawn" each worker paid the whole import again). The server never
    initialises CUDA (importing these modules does not), so each worker initialises its own CUDA context as under
    "spawn", whatever this process has done with CUDA (which rules out plain "fork" of this process). The server is
    started once per parent process, with the parent's environment then: later workers see that environment."""
    import multiprocessing as mp

    if not devices:
        raise ValueError("devices=[]: needs at least one device")
    sweeps = get_preset(**preset_kwargs)  # validate before starting anything
    # Runs finished in any shard left by an earlier call (with this or another number of workers; also when ``out``
    # itself was removed) are folded into ``out`` first, and every shard then starts from ``out``: all workers see the
    # same pending runs, so their round-robin shares partition them (no run trained twice, none left out).
    stale = Path(out).parent.glob(f"{Path(out).stem}.worker*{Path(out).suffix}")
    append_records(out, [r for shard in sorted(stale) for r in read_records(shard)])
    for i in range(len(devices)):  # finished runs of the merged file count as finished for every worker
        append_records(shard_path(out, i), read_records(out))
    del sweeps
    started = time.time() if started is None else started
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # takes effect when the server starts (at the first start)
    else:
        ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(preset_kwargs, str(shard_path(out, i)), dev, i, len(devices), started))
        for i, dev in enumerate(devices)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed_log(started)(f"workers exited: {[p.exitcode for p in procs]}")
    merged = [r for i in range(len(devices)) for r in read_records(shard_path(out, i))]
    before = len(read_records(out))
    append_records(out, merged)
    failed = [i for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"workers {failed} failed; finished runs were merged into {out}; rerun to resume")
    return len(read_records(out)) - before


def run_ray(
    preset_kwargs: dict, out: str | Path, *, num_tasks: int, gpus_per_task: float = 1.0, address: str | None = None
) -> int:
    """One Ray task per share of the groups; tasks return records, the driver writes them (no shared file system
    needed). ``ray`` is an optional extra, imported here only. Returns runs recorded."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError("run_ray needs the optional extra `ray` (pip install mqarkit[ray])") from exc
    if num_tasks < 1:
        raise ValueError(f"num_tasks={num_tasks}: needs num_tasks >= 1")
    sweeps = get_preset(**preset_kwargs)
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False)

    @ray.remote(num_gpus=gpus_per_task)
    def task(kwargs: dict, todo: list[tuple[str, list[str]]]) -> list[dict]:
        device = "cuda" if torch.cuda.is_available() and gpus_per_task > 0 else "cpu"
        by_name = {sw.name: sw for sw in get_preset(**kwargs)}
        return [
            rec
            for name, ids in todo
            for group in run_groups(by_name[name], set(ids), device, log=lambda s: None)
            for rec in group
        ]

    shares: list[list[tuple[str, list[str]]]] = [[] for _ in range(num_tasks)]
    k = 0
    for sw, todo in pending(sweeps, out):
        for g in groups(sw, todo):
            shares[k % num_tasks].append((sw.name, [r.run_id for r in g]))
            k += 1
    futures = [task.remote(preset_kwargs, share) for share in shares if share]
    count = 0
    while futures:
        ready, futures = ray.wait(futures, num_returns=1)
        records = ray.get(ready[0])
        append_records(out, records)
        count += len(records)
    return count


def sweep_summary(sweeps: list[SweepConfig]) -> list[dict]:
    return [
        {
            "name": sw.name,
            "runs": len(sw.runs()),
            "groups": len(groups(sw)),
            "epochs": sw.epochs,
            "lrs": list(sw.lrs),
            "train": [asdict(s) for s in sw.train],
            "test": [asdict(s) for s in sw.test],
            "notes": list(sw.notes),
        }
        for sw in sweeps
    ]
