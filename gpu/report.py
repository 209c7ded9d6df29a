"""What every GPU check script records the same way: the environment, a timed point, and a Markdown table.

- :func:`environment`: torch version, device, device name and triton version (GPU results name their device and
  versions);
- :func:`measure_point`: resets the peak-memory counter, times ``fn`` with :func:`mqarkit.gpu.timing.time_callable`
  (CUDA events after warm-up on the GPU) and writes ``median_s``, ``tokens_per_s`` and ``peak_memory_gib`` into a row;
- :func:`markdown_table`: rows of dicts as a Markdown table from a column spec; :func:`timing_columns` and
  :data:`ERROR_COLUMN` the columns every table shares, :func:`results_markdown` the page (environment line + table);
- the command line: :func:`add_run_arguments` (``--dtypes --device --repeats --seed --out``), :func:`run_setup` (the
  device, the dtypes and the environment they give) and :func:`add_rows` (print a point's rows, rewrite the files).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from mqarkit.checks import check_int
from mqarkit.errors import UsageError, usage_errors
from mqarkit.gpu.device import resolve_device, triton_version
from mqarkit.gpu.timing import time_callable
from mqarkit.outputs import check_output_folder

# (header, row key, format spec; None = str(value)); a missing key renders as an empty cell
Column = tuple[str, str, str | None]


def environment(device: torch.device) -> dict:
    env: dict[str, object] = {"torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    env["triton"] = triton_version()
    return env


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh peak-memory count (CUDA only; a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def measure_point(
    row: dict, fn: Callable[[], object], *, tokens: int, device: torch.device, warmup: int = 1, repeats: int = 5
) -> None:
    """Time ``fn`` (median over ``repeats`` after ``warmup``) and record ``median_s``, ``tokens_per_s`` (``tokens``
    per call / median) and, on CUDA, ``peak_memory_gib`` since the last :func:`reset_peak_memory`, into ``row``."""
    times = time_callable(fn, warmup=warmup, repeats=repeats, device=device)
    row["median_s"] = statistics.median(times)
    row["tokens_per_s"] = tokens / row["median_s"]
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30


def markdown_table(rows: Sequence[dict], columns: Sequence[Column]) -> str:
    """``rows`` as a Markdown table with one column per ``(header, key, format)`` entry."""

    def cell(row: dict, key: str, spec: str | None) -> str:
        value = row.get(key)
        if value is None:
            return ""
        return str(value) if spec is None else format(value, spec)

    head = "| " + " | ".join(h for h, _, _ in columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(cell(r, k, f) for _, k, f in columns) + " |\n" for r in rows)
    return head + body


def timing_columns(peak_spec: str = ".2f") -> list[Column]:
    """The columns :func:`measure_point` fills: tokens/s, median seconds and peak GiB (``peak_spec``)."""
    return [
        ("tokens/s", "tokens_per_s", ".3g"),
        ("median s", "median_s", ".4g"),
        ("peak GiB", "peak_memory_gib", peak_spec),
    ]


# the last column of every table: what :func:`per_dtype_rows` records for a point that could not run
ERROR_COLUMN: Column = ("error", "error", None)


def environment_line(env: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in env.items())


def results_markdown(env: dict, rows: Sequence[dict], columns: Sequence[Column], title: str | None = None) -> str:
    """The Markdown page of a run: ``# title`` (if any), the environment line, the table of ``rows``."""
    head = f"# {title}\n\n" if title else ""
    return f"{head}{environment_line(env)}\n\n{markdown_table(rows, columns)}"


# What a point that cannot run records instead of results (the run goes on with the next point).
POINT_ERRORS: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError, ValueError)


def per_dtype_rows(
    base: dict, dtypes: Sequence[str], device: torch.device, fill: Callable[[dict, str], None]
) -> list[dict]:
    """One row per dtype: ``{**base, "dtype": name}`` completed by ``fill(row, name)``; an error from
    :data:`POINT_ERRORS` is recorded in the row's ``error`` (first 300 characters) instead of stopping the run, and the
    CUDA cache is emptied between dtypes."""
    rows = []
    for name in dtypes:
        row = {**base, "dtype": name}
        try:
            fill(row, name)
        except POINT_ERRORS as err:
            row["error"] = f"{type(err).__name__}: {str(err)[:300]}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(row)
    return rows


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}


CPU_DTYPES = "float64,float32"  # the default --dtypes on the CPU


def parse_dtypes(text: str | None, default: str) -> list[str]:
    """A comma-separated ``--dtypes`` option (``default`` when empty), each a key of :data:`DTYPES`."""
    names = (text or default).split(",")
    bad = [d for d in names if d not in DTYPES]
    if bad:
        raise ValueError(f"dtypes={bad}: must be among {sorted(DTYPES)}")
    return names


def write_results(
    out: str | Path, stem: str, env: dict, rows: list[dict], markdown: Callable[[dict, list], str]
) -> None:
    """``<out>/<stem>.json`` (environment + rows) and ``<out>/<stem>.md``; called after every point, so a run cut
    short keeps what it measured."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    (folder / f"{stem}.md").write_text(markdown(env, rows))


def add_run_arguments(parser: argparse.ArgumentParser, *, cuda_dtypes: str, repeats: int, stem: str) -> None:
    """The options every check script takes: ``--dtypes`` (default ``cuda_dtypes`` on CUDA, :data:`CPU_DTYPES` on the
    CPU: pass the same ``cuda_dtypes`` to :func:`run_setup`), ``--device``, ``--repeats``, ``--seed`` and ``--out``
    (the folder of ``<stem>.json`` and ``<stem>.md``)."""
    parser.add_argument("--dtypes", default=None, help=f"default {cuda_dtypes} (CUDA), {CPU_DTYPES} (CPU)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help=f"folder for {stem}.{{json,md}}")


def run_setup(args: argparse.Namespace, cuda_dtypes: str) -> tuple[torch.device, list[str], dict]:
    """``(device, dtypes, environment)`` from the options of :func:`add_run_arguments`, every option checked first
    (``UsageError`` naming the option: an unknown or absent device, a dtype, ``--repeats < 1``, an ``--out`` folder
    that cannot be written)."""
    try:
        device = resolve_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (ValueError, TypeError, RuntimeError) as err:
        raise UsageError(f"--device: {err}") from err
    with usage_errors():
        dtypes = parse_dtypes(args.dtypes, cuda_dtypes if device.type == "cuda" else CPU_DTYPES)
        check_int("repeats", args.repeats, 1)
        if args.out:
            check_output_folder(args.out, parameter="--out")
    return device, dtypes, environment(device)


def parse_int_list(text: str, option: str) -> list[int]:
    """A comma-separated list of ints (``--num-kv-pairs 16,64``); ``UsageError`` naming ``option`` otherwise."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise UsageError(f"{option}={text!r}: must be comma-separated ints") from err
    return values


def add_rows(
    rows: list[dict],
    new: list[dict],
    *,
    out: str | Path | None,
    stem: str,
    env: dict,
    markdown: Callable[[dict, list], str],
) -> None:
    """Append one point's ``new`` rows to ``rows``, print them as a JSON line and, when ``out`` is set, rewrite
    the run's files (:func:`write_results`)."""
    rows += new
    print(json.dumps(new), flush=True)
    if out:
        write_results(out, stem, env, rows, markdown)
