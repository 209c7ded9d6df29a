"""Ray as the engine beyond one machine: one Ray task per stack, retried, its records streamed into the store.

:func:`run_ray` (``mqarkit frontier run --ray``) submits, for every stack still to train (a group of
:func:`~mqarkit.gpu.frontier.sweep.groups`), one Ray task that trains it and returns its records. The driver waits on
the tasks as they come (``ray.wait``) and appends each task's records to the results file as soon as it finishes
(:class:`~mqarkit.gpu.frontier.records.RecordsStore`: no shared file system needed, and an interruption keeps every
stack finished so far; a rerun skips them). How it is done:

- **Resources.** Each task asks for ``gpus_per_task`` GPUs (``num_gpus``; a fraction < 1 lets tasks share a GPU) and
  one CPU. By default a task asks for 1 GPU where the cluster has GPUs and trains on a CPU where it has none. Asking
  for GPUs the cluster does not have (none at all, or more than any node holds) is refused before anything is
  submitted, with what the cluster has (``ray.nodes()``): Ray would otherwise wait for them for ever. The cluster is
  read as it is at the start: an autoscaling cluster whose GPU nodes are not up yet is refused too.
- **Retries.** A task that raises, or whose worker dies, is run again up to ``retries`` times (Ray's ``max_retries``
  with ``retry_exceptions=True``). A task that still fails is logged with its error and reported at the end
  (:class:`RayTasksFailed`, after every other task has finished and been recorded); ``mqarkit frontier run`` then
  prints one line per failed stack and exits 1. Its runs have no record, so a rerun trains them.
- **Data once per sweep.** The data of a sweep are generated once, by a Ray task of their own on the kind of device
  the training tasks use (the data depend on the device type: torch's CPU and CUDA generators draw different
  streams), returned to the Ray object store as CPU tensors, and handed to every stack of the sweep as the same
  ``ObjectRef``: each training task gets a copy from its node's object store and moves it to its device. Ray drops
  the data once the sweep's last stack is done. (Each task still compiles its own stack: the stacks differ.)
- **Logs.** A task logs as the one-process runner does, each line prefixed with ``[task k/n sweep: family d=..]``,
  on its stdout; Ray forwards worker output to the driver (``log_to_driver``, on by default), after its own prefix
  ``(_train_stack pid=...)``. Ray's deduplication of similar lines across workers is kept off for these lines
  (``RAY_DEDUP_LOGS_ALLOW_REGEX``, set where ray is first imported by :func:`run_ray`). Forwarding runs behind the
  tasks: the driver waits :data:`LOG_DRAIN_SECONDS` after the last task before it returns.
- **Shipping code.** ``runtime_env`` (``--ray-runtime-env JSON``), validated by Ray's ``RuntimeEnv`` first, is the
  job's: :func:`run_ray` passes it to ``ray.init`` when it connects (or starts a local cluster) itself, and Ray
  uploads local paths for it: ``{"py_modules": ["my_mixers"]}`` ships a user's mixer package to the workers,
  ``{"working_dir": "."}`` a folder; ``{"pip": [...]}`` installs packages, ``{"env_vars": {...}}`` sets variables
  (``docs/mixer_protocol.md``). In a process already connected to Ray (a notebook), each task carries it instead,
  and Ray takes no local paths there. mqarkit itself must be installed on the workers' Python.

A test hook, not a user feature: where the environment variable :data:`TEST_FAIL_DIR_ENV` names a folder, a training
task whose stack's first run id has a marker file there (:func:`failure_marker`) holding a count ``k > 0`` writes
``k - 1`` into it and raises :class:`InjectedFailure`, so a test can make a task fail once (then be retried) or always.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqarkit.errors import UsageError, one_line
from mqarkit.gpu.frontier.observers import stack_name
from mqarkit.gpu.frontier.records import RecordsStore, append_records
from mqarkit.gpu.frontier.runner import SweepData, pending, prepare_data, run_groups
from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig, groups
from mqarkit.gpu.frontier.tracking import Tracking

DEFAULT_RETRIES = 2
LOG_DRAIN_SECONDS = 1.0  # after the last task: time for Ray to forward its last lines (its log monitor polls at 0.1 s)
TASK_LOG_PREFIX = "[task "  # every line a training task logs starts with it
TEST_FAIL_DIR_ENV = "MQARKIT_TEST_RAY_FAIL_DIR"


class InjectedFailure(RuntimeError):
    """Raised by the test hook (module docstring)."""


@dataclass(frozen=True)
class FailedTask:
    """A stack whose task failed after its retries: its label, its runs and the error (one line)."""

    label: str
    run_ids: list[str]
    error: str


class RayTasksFailed(RuntimeError):
    """Some tasks failed after their retries; every other task finished and its records were written."""

    def __init__(self, failed: list[FailedTask], recorded: int, out: str | os.PathLike[str], attempts: int) -> None:
        self.failed, self.recorded, self.out, self.attempts = failed, recorded, Path(out), attempts
        super().__init__(
            f"{len(failed)} Ray tasks failed after {attempts} attempts each ({', '.join(f.label for f in failed)}); "
            f"{recorded} runs of the other tasks were recorded in {out}; rerun to train the failed stacks"
        )


# ---------------------------------------------------------------- checks (before anything is submitted)
def check_gpus_per_task(gpus_per_task: float | None) -> None:
    """The value alone: ``None`` (decide from the cluster), or a finite number >= 0, a whole number above 1 (Ray
    splits a GPU only into fractions of one)."""
    if gpus_per_task is None:
        return
    if isinstance(gpus_per_task, bool) or not isinstance(gpus_per_task, int | float):
        raise TypeError(f"--gpus-per-task={gpus_per_task!r}: needs a number")
    if not (math.isfinite(gpus_per_task) and gpus_per_task >= 0):
        raise ValueError(f"--gpus-per-task={gpus_per_task}: needs a finite number >= 0")
    if gpus_per_task > 1 and gpus_per_task != int(gpus_per_task):
        raise ValueError(f"--gpus-per-task={gpus_per_task}: needs a fraction <= 1 or a whole number of GPUs")


def gpus_for_cluster(gpus_per_task: float | None, node_gpus: list[float], resources: dict[str, float]) -> float:
    """The GPUs each task asks for on a cluster whose live nodes have ``node_gpus``: the default (``None``) is 1 if
    some node has a GPU, else 0 (CPUs). Raises ``UsageError`` for GPUs no node can give (Ray would wait for ever)."""
    most = max(node_gpus, default=0.0)
    if gpus_per_task is None:
        return 1.0 if most >= 1 else 0.0
    if gpus_per_task > 0 and most == 0:
        have = ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items()) if k in ("CPU", "GPU", "memory")) or "none"
        raise UsageError(
            f"--gpus-per-task={gpus_per_task:g}: the Ray cluster has no GPUs (it has {have}); "
            "pass --gpus-per-task 0 to train on its CPUs"
        )
    if gpus_per_task > most:
        raise UsageError(
            f"--gpus-per-task={gpus_per_task:g}: no node of the Ray cluster has that many GPUs (the most on one node: "
            f"{most:g}; {sum(node_gpus):g} in all)"
        )
    return float(gpus_per_task)


def check_runtime_env(runtime_env: dict | None) -> None:
    """A dict that Ray's ``RuntimeEnv`` accepts (types, local paths that exist), or ``None``."""
    if runtime_env is None:
        return
    if not isinstance(runtime_env, dict):
        raise TypeError(f"runtime_env: needs a JSON object (a dict), got {type(runtime_env).__name__}")
    import_ray()
    from ray.runtime_env import RuntimeEnv

    try:
        RuntimeEnv(**runtime_env)
    except (TypeError, ValueError) as err:
        raise ValueError(f"runtime_env={runtime_env!r}: {one_line(err)}") from None


# ---------------------------------------------------------------- what runs in the tasks
def failure_marker(folder: str | os.PathLike[str], run_id: str) -> Path:
    """Test hook: the marker file of the stack whose first run is ``run_id`` (module docstring)."""
    return Path(folder) / (run_id.replace("/", "__") + ".fail")


def _injected_failure(group: list[RunSpec]) -> None:
    folder = os.environ.get(TEST_FAIL_DIR_ENV)
    if not folder:
        return
    marker = failure_marker(folder, group[0].run_id)
    try:
        left = int(marker.read_text())
    except FileNotFoundError:
        return
    if left > 0:
        marker.write_text(str(left - 1))
        raise InjectedFailure(f"injected failure of the stack of {group[0].run_id} (test hook; {left - 1} more)")


def _device(gpus: float) -> str:
    return "cuda" if gpus > 0 else "cpu"


def _generate_data(sweep: SweepConfig, gpus: float) -> SweepData:
    """Ray task: the sweep's data, generated on the training tasks' kind of device, as CPU tensors."""
    data = prepare_data(sweep, _device(gpus))
    print(f"[data {sweep.name}] generated on {_device(gpus)} in {data.seconds:.1f} s", flush=True)
    return data.to("cpu")


def _train_stack(
    sweep: SweepConfig, run_ids: list[str], data: SweepData, label: str, gpus: float, tracking: Tracking | None
) -> list[dict]:
    """Ray task: train one stack (``run_ids``: its runs) on ``data``; its records."""

    def log(line: str) -> None:
        print(f"{TASK_LOG_PREFIX}{label}] {line}", flush=True)

    todo = set(run_ids)
    (group,) = groups(sweep, todo)
    _injected_failure(group)
    return [
        rec for records in run_groups(sweep, todo, _device(gpus), log, tracking=tracking, data=data) for rec in records
    ]


# ---------------------------------------------------------------- the driver
def import_ray() -> Any:
    """``ray``, imported with its log deduplication off for the tasks' lines (read once, when ray is first imported)."""
    os.environ.setdefault("RAY_DEDUP_LOGS_ALLOW_REGEX", "^" + re.escape(TASK_LOG_PREFIX))
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError('run_ray needs the optional extra ray: pip install "mqarkit[ray]"') from exc
    return ray


def run_ray(
    sweeps: list[SweepConfig],
    out: str | os.PathLike[str],
    *,
    gpus_per_task: float | None = None,
    retries: int = DEFAULT_RETRIES,
    max_in_flight: int | None = None,
    address: str | None = None,
    runtime_env: dict | None = None,
    tracking: Tracking | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Train every unfinished run of ``sweeps`` on a Ray cluster, one task per stack (module docstring); returns the
    number of runs recorded now in ``out``. Raises :class:`RayTasksFailed` at the end if a task failed after its
    ``retries``.

    ``address``: a running cluster (``"auto"``, ``"ray://host:10001"``; ``"local"``: a new local one). Default: the
    cluster this process is connected to, else Ray's choice: ``RAY_ADDRESS``, else a cluster ``ray start`` left on
    this machine, else a new local one (shut down at the end). ``max_in_flight``: the most tasks submitted
    at once (default: all; the cluster's resources decide how many run). ``tracking``: each task builds the tracker
    (its folder must be writable where the tasks run)."""
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"--ray-retries={retries!r}: needs an integer >= 0")
    if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
        raise ValueError(f"--ray-tasks={max_in_flight!r}: needs an integer >= 1")
    check_gpus_per_task(gpus_per_task)
    for sw in sweeps:
        sw.validate()
    if tracking is not None:
        tracking.validate()
    RecordsStore(out).check_writable()
    ray = import_ray()
    check_runtime_env(runtime_env)
    connected_here = not ray.is_initialized()
    if connected_here:  # the job's runtime_env: Ray uploads local paths (py_modules, working_dir) for it
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=True)
    elif address is not None:
        log(f"Ray: this process is already connected to a cluster; address={address!r} is not used")
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        gpus = gpus_for_cluster(gpus_per_task, [n["Resources"].get("GPU", 0.0) for n in nodes], ray.cluster_resources())
        task_env = None if connected_here else runtime_env  # already connected: the tasks carry it
        return _drive(ray, sweeps, out, gpus, retries, max_in_flight, task_env, tracking, log)
    finally:
        if connected_here:
            ray.shutdown()


def _drive(ray, sweeps, out, gpus, retries, max_in_flight, runtime_env, tracking, log) -> int:
    options: dict[str, Any] = {"num_gpus": gpus, "num_cpus": 1, "max_retries": retries, "retry_exceptions": True}
    if runtime_env is not None:
        options["runtime_env"] = runtime_env
    try:
        make_data = ray.remote(_generate_data).options(**options)
        train = ray.remote(_train_stack).options(**options)
    except ValueError as err:  # a task's runtime_env takes no local paths (Ray uploads them only for a job)
        raise ValueError(
            f"runtime_env: {one_line(err)} (this process was already connected to Ray, so the tasks carry "
            "runtime_env; give local paths to ray.init(runtime_env=...) instead, or let run_ray connect)"
        ) from None
    queue = [(sw, g) for sw, todo in pending(sweeps, out) for g in groups(sw, todo)]
    total = len(queue)
    left_per_sweep = {sw.name: sum(s.name == sw.name for s, _ in queue) for sw in sweeps}
    log(f"Ray: {total} tasks (one per stack), {gpus:g} GPUs and 1 CPU each, {retries} retries each")
    data_refs: dict[str, Any] = {}  # sweep name -> its data in the object store, while some stack of it is left
    in_flight: dict[Any, tuple[SweepConfig, str, list[str]]] = {}
    failed: list[FailedTask] = []
    count = 0
    submitted = 0
    try:
        while queue or in_flight:
            while queue and (max_in_flight is None or len(in_flight) < max_in_flight):
                sw, group = queue.pop(0)
                submitted += 1
                label = f"{submitted}/{total} {sw.name}: {stack_name(group)}"
                if sw.name not in data_refs:
                    data_refs[sw.name] = make_data.remote(sw, gpus)
                run_ids = [r.run_id for r in group]
                ref = train.remote(sw, run_ids, data_refs[sw.name], label, gpus, tracking)
                in_flight[ref] = (sw, label, run_ids)
            (ready,), _ = ray.wait(list(in_flight), num_returns=1)
            sw, label, run_ids = in_flight.pop(ready)
            left_per_sweep[sw.name] -= 1
            if left_per_sweep[sw.name] == 0:
                data_refs.pop(sw.name, None)  # the last reference: Ray may free the sweep's data
            try:
                records = ray.get(ready)
            except ray.exceptions.RayError as err:
                failed.append(FailedTask(label, run_ids, _error_line(err)))
                log(f"Ray: task {label} FAILED after {retries + 1} attempts: {failed[-1].error}")
                continue
            written = append_records(out, records, log=log).written
            count += written
            log(f"Ray: task {label} done: {written} records written to {out}")
    except KeyboardInterrupt:
        for ref in in_flight:
            ray.cancel(ref)
        raise
    if total:
        time.sleep(LOG_DRAIN_SECONDS)
    if failed:
        raise RayTasksFailed(failed, count, out, retries + 1)
    return count


def _error_line(err: Exception) -> str:
    """A task's error on one line: the exception raised in the task where Ray kept it, else Ray's own."""
    cause = getattr(err, "cause", None)
    shown = cause if isinstance(cause, BaseException) else err
    return one_line(f"{type(shown).__name__}: {shown}")[:500]
