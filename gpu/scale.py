"""Scale checks: each construction, loaded into torch mixers, solves MQAR far beyond CPU sizes.

``python -m mqarkit.gpu.scale --preset gpu --out DIR`` (or ``main(argv)``) builds each case's construction, loads it
(:func:`mqarkit.gpu.loaders.load`), draws clean instances with ``mqarkit.task.generate`` on the CPU (moved to the
device), predicts in each precision and scores with ``mqarkit.oracle.score``. Per case and dtype it records the
accuracy, the throughput (tokens/s of ``predict``: CUDA events after warm-up, median; ``perf_counter`` on the CPU),
the peak memory (``torch.cuda.max_memory_allocated``) and the time to build and load the weights; a case that cannot
be built or run (memory) is recorded with its error, never skipped silently. Results: ``scale_checks.json`` and
``scale_checks.md`` in ``--out``.

Sizes (``MQARSpec`` needs ``c > N``, so ``c = N + 1`` where the brief says ``c = N``):

- ``attention_signcode`` at N = 65,536, c = 65,537 (code width m = 17; score gap ``2/m``);
- ``based_taylor`` (one-hot values, zero filler: the exact regime) along N = 1,024 .. 16,384 with c = N + 1;
- the BaseConv constructions at the largest N whose dense weights fit (their IR stores dense ``W: (d, d)`` with
  ``d = 2m * (N/2 - 1)`` (sign) or ``2tc``: at N = 4,096 that is ``d = 53,222``, ``d^2 = 2.8e9`` entries per layer,
  22 GB in float64 each, so N = 4,096 is out of reach of a dense load; see ``dense_baseconv_bytes``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from mqarkit.cli import CommandParser, run_as_script
from mqarkit.errors import UsageError
from mqarkit.gpu.loaders import load
from mqarkit.gpu.report import (
    DTYPES,
    ERROR_COLUMN,
    Column,
    add_rows,
    add_run_arguments,
    measure_point,
    parse_int_list,
    per_dtype_rows,
    reset_peak_memory,
    results_markdown,
    run_setup,
    timing_columns,
)


@dataclass(frozen=True)
class Case:
    name: str
    seq_len: int
    vocab_size: int
    num_kv_pairs: int
    filler: str
    batch: int
    knobs: dict = field(default_factory=dict)


def dense_baseconv_bytes(seq_len: int, vocab_size: int) -> int:
    """float64 bytes of the dense ``W`` matrices of the data-independent sign construction (1 + depth layers)."""
    m = max(1, (vocab_size - 1).bit_length())
    d = 2 * m * len(range(2, seq_len, 2))
    return 8 * d * d * (1 + m.bit_length())


PRESETS: dict[str, list[Case]] = {
    "gpu": [
        Case("attention_signcode", 65_536, 65_537, 4_096, "clean", 2),
        Case("based_taylor", 1_024, 1_025, 256, "zero", 4),
        Case("based_taylor", 4_096, 4_097, 1_024, "zero", 2),
        Case("based_taylor", 8_192, 8_193, 2_048, "zero", 1),
        Case("baseconv_data_independent", 256, 257, 32, "clean", 8),
        Case("baseconv_data_independent", 512, 513, 64, "clean", 4),
        Case("baseconv_input_dependent", 256, 257, 8, "clean", 2),
        Case("based_taylor", 16_384, 16_385, 4_096, "zero", 1),
    ],
    "cpu": [
        Case("attention_signcode", 512, 513, 64, "clean", 2),
        Case("based_taylor", 128, 129, 32, "zero", 2),
        Case("baseconv_data_independent", 32, 33, 4, "clean", 2),
        Case("baseconv_input_dependent", 32, 33, 4, "clean", 2),
    ],
}


def run_case(case: Case, dtypes: list[str], device: torch.device, seed: int, repeats: int) -> list[dict]:
    from mqarkit.constructions import build
    from mqarkit.oracle import score
    from mqarkit.task import MQARSpec, generate

    base = {
        "construction": case.name,
        "seq_len": case.seq_len,
        "vocab_size": case.vocab_size,
        "num_kv_pairs": case.num_kv_pairs,
        "filler": case.filler,
        "batch": case.batch,
        **case.knobs,
    }
    spec = MQARSpec(
        vocab_size=case.vocab_size, seq_len=case.seq_len, num_kv_pairs=case.num_kv_pairs, filler=case.filler
    )
    batch = generate(spec, case.batch, np.random.default_rng(seed))
    t0 = time.perf_counter()
    try:
        con = build(
            case.name, vocab_size=case.vocab_size, seq_len=case.seq_len, num_kv_pairs=case.num_kv_pairs, **case.knobs
        )
    except (MemoryError, ValueError) as err:
        return [{**base, "error": f"build: {type(err).__name__}: {err}"}]
    build_s = time.perf_counter() - t0
    inputs = torch.from_numpy(batch.inputs).to(device)

    def fill(row: dict, name: str) -> None:
        row["build_s"] = round(build_s, 3)
        t0 = time.perf_counter()
        model = load(con, device=device, dtype=DTYPES[name])
        row["load_s"] = round(time.perf_counter() - t0, 3)
        reset_peak_memory(device)
        pred = model.predict(inputs)
        row["accuracy"] = score(pred.cpu().numpy(), batch).accuracy
        measure_point(
            row, partial(model.predict, inputs), tokens=case.batch * case.seq_len, device=device, repeats=repeats
        )
        model = None  # free the weights before the next dtype loads

    return per_dtype_rows(base, dtypes, device, fill)


COLUMNS: list[Column] = [
    ("construction", "construction", None),
    ("N", "seq_len", None),
    ("c", "vocab_size", None),
    ("D", "num_kv_pairs", None),
    ("B", "batch", None),
    ("dtype", "dtype", None),
    ("accuracy", "accuracy", ".4f"),
    *timing_columns(),
    ("build s", "build_s", None),
    ("load s", "load_s", None),
    ERROR_COLUMN,
]
STEM = "scale_checks"  # <out>/STEM.json, .md
CUDA_DTYPES = "float32,bfloat16,float16"


def markdown(env: dict, rows: list[dict]) -> str:
    return results_markdown(env, rows, COLUMNS, title="Scale checks")


def main(argv: list[str] | None = None) -> list[dict]:
    parser = CommandParser(prog="mqarkit.gpu.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="gpu")
    parser.add_argument("--only", default=None, help="comma-separated construction names")
    parser.add_argument("--seq-lens", default=None, help="comma-separated N to keep (default: every case)")
    add_run_arguments(parser, cuda_dtypes=CUDA_DTYPES, repeats=5, stem=STEM)
    args = parser.parse_args(argv)
    device, dtypes, env = run_setup(args, CUDA_DTYPES)
    only = set(args.only.split(",")) if args.only else None
    unknown = sorted((only or set()) - {case.name for case in PRESETS[args.preset]})
    if unknown:
        raise UsageError(f"--only={args.only!r}: {unknown} are not constructions of preset {args.preset!r}")
    seq_lens = set(parse_int_list(args.seq_lens, "--seq-lens")) if args.seq_lens else None
    rows: list[dict] = []
    for case in PRESETS[args.preset]:
        if only is not None and case.name not in only:
            continue
        if seq_lens is not None and case.seq_len not in seq_lens:
            continue
        new = run_case(case, dtypes, device, args.seed, args.repeats)
        add_rows(rows, new, out=args.out, stem=STEM, env=env, markdown=markdown)
    return rows


if __name__ == "__main__":
    sys.exit(run_as_script(main, "mqarkit.gpu.scale"))
