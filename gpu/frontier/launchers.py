"""Launchers beyond one process: one worker process per device entry. (Ray, for more than one machine:
:mod:`mqarkit.gpu.frontier.ray_launcher`.)"""

from __future__ import annotations

import time
from pathlib import Path

from mqarkit.gpu.frontier.determinism import check_environment, check_flag
from mqarkit.gpu.frontier.records import RECORD_STATUSES, RecordsStore, append_records, read_records
from mqarkit.gpu.frontier.runner import elapsed_log, run_sweeps
from mqarkit.gpu.frontier.sweep import SweepConfig
from mqarkit.gpu.frontier.tracking import Tracking

# The training modules (and through them triton) load where a run trains, not at import: the parent of
# run_multiprocess only reads presets and records. The workers get them preloaded (see run_multiprocess). Not
# torch._dynamo / torch._inductor: importing them initialises the CUDA driver (seen with torch 2.11 on an H100), which
# would break every worker forked from the server.
WORKER_PRELOAD = ("mqarkit.gpu.frontier.launchers", "mqarkit.gpu.frontier.train", "mqarkit.gpu.frontier.cuda_graphs")


def _worker_main(
    sweeps: list[SweepConfig],
    out: str,
    device: str,
    worker: int,
    num_workers: int,
    started: float | None = None,
    tracking: Tracking | None = None,
    deterministic: bool = False,
) -> None:
    log = elapsed_log(time.time() if started is None else started, f"[worker {worker} on {device}] ")
    log("started (imports done)")
    run_sweeps(
        sweeps,
        out,
        device,
        worker=worker,
        num_workers=num_workers,
        log=log,
        tracking=tracking,
        deterministic=deterministic,
    )


def shard_path(out: str | Path, worker: int) -> Path:
    p = Path(out)
    return p.with_name(f"{p.stem}.worker{worker}{p.suffix}")


def run_multiprocess(
    sweeps: list[SweepConfig],
    out: str | Path,
    devices: list[str],
    *,
    started: float | None = None,
    tracking: Tracking | None = None,
    deterministic: bool = False,
) -> int:
    """One worker process per entry of ``devices`` (e.g. ``["cuda:0", "cuda:1"]``; a device named several times gets
    several workers, which share it); groups partitioned round-robin; each worker writes its shard (resumable on its
    own); the shards are merged into ``out`` at the end. Returns runs merged. ``started``: the ``time.time()`` the log's
    stamps count from (default: now). ``tracking``: each worker tracks its runs (:mod:`.tracking`).
    ``deterministic``: every worker trains in deterministic mode (:mod:`.determinism`; each sets the mode's
    environment before its first CUDA work).

    Workers start through the "forkserver" method where the platform has it (else "spawn"): a fresh server process
    imports torch and the training modules (:data:`WORKER_PRELOAD`) once and forks every worker from itself, so a
    worker starts without re-importing them (under "spawn" each worker paid the whole import again). The server never
    initialises CUDA (importing these modules does not), so each worker initialises its own CUDA context as under
    "spawn", whatever this process has done with CUDA (which rules out plain "fork" of this process). The server is
    started once per parent process, with the parent's environment then: later workers see that environment."""
    import multiprocessing as mp

    if not devices:
        raise ValueError("devices=[]: needs at least one device")
    for sw in sweeps:  # validate before starting anything
        sw.validate()
    if tracking is not None:
        tracking.validate()
    if check_flag(deterministic):
        check_environment()
    RecordsStore(out).check_writable()
    # Runs finished in any shard left by an earlier call (with this or another number of workers; also when ``out``
    # itself was removed) are folded into ``out`` first, and every shard then starts from ``out``: all workers see the
    # same pending runs, so their round-robin shares partition them (no run trained twice, none left out).
    stale = Path(out).parent.glob(f"{Path(out).stem}.worker*{Path(out).suffix}")
    append_records(out, [r for shard in sorted(stale) for r in read_records(shard, statuses=RECORD_STATUSES)])
    for i in range(len(devices)):  # finished runs of the merged file count as finished for every worker
        append_records(shard_path(out, i), read_records(out, statuses=RECORD_STATUSES))
    started = time.time() if started is None else started
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # takes effect when the server starts (at the first start)
    else:
        ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(sweeps, str(shard_path(out, i)), dev, i, len(devices), started, tracking, deterministic),
        )
        for i, dev in enumerate(devices)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed_log(started)(f"workers exited: {[p.exitcode for p in procs]}")
    merged = [r for i in range(len(devices)) for r in read_records(shard_path(out, i), statuses=RECORD_STATUSES)]
    before = len(read_records(out, statuses=RECORD_STATUSES))
    append_records(out, merged)
    failed = [i for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"workers {failed} failed; finished runs were merged into {out}; rerun to resume")
    return len(read_records(out, statuses=RECORD_STATUSES)) - before
