"""``mqarkit verify``: run the claim registry's machine checks and write the report.

    mqarkit verify [--budget default|full] [--claims U1,L2,...] [--json PATH] [--markdown PATH]

Exit status: 0 when no check failed, 1 when one did, 2 on a bad request (e.g. an unknown claim id).
A budget names fixed grids and instance seeds (``default``: about a minute on one CPU core; ``full``: larger), so the
same command gives the same claims, statuses and ranges, and the JSON differs between runs only in its timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mqarkit.cli import CommandParser, reports_usage_errors
from mqarkit.errors import UsageError, usage_errors
from mqarkit.outputs import check_output_file
from mqarkit.proofs_checks import catalog, construction_checks, report
from mqarkit.proofs_checks.registry import BUDGETS, ClaimResult, budget, run_claim


def build_parser() -> argparse.ArgumentParser:
    p = CommandParser(prog="mqarkit verify", description="Run the machine checks of every claim.")
    p.add_argument("--budget", default="default", choices=sorted(BUDGETS), help="which fixed grids the checks run")
    p.add_argument("--claims", default=None, help="comma-separated claim ids (default: all), e.g. U1,L2,E13")
    p.add_argument("--json", default="reports/verify.json", type=Path, help="where to write the JSON report")
    p.add_argument("--markdown", default="reports/verify.md", type=Path, help="where to write the Markdown report")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return p


@reports_usage_errors("mqarkit verify")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # every refusal happens here, before a check runs or a report is overwritten (exit 2 through mqarkit.cli)
    ids = None if args.claims is None else [s.strip() for s in args.claims.split(",") if s.strip()]
    if ids == []:
        raise UsageError(f"--claims={args.claims!r}: names no claim; give comma-separated claim ids, e.g. U1,L2,E13")
    with usage_errors():
        claims = catalog.select(ids)
        check_output_file(args.json, parameter="--json")
        check_output_file(args.markdown, parameter="--markdown")
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    console = Console(stderr=True, quiet=args.quiet)
    chosen = budget(args.budget)
    construction_checks.clear_cache()
    results: list[ClaimResult] = []
    t0 = time.perf_counter()
    with Progress(console=console, transient=True, disable=args.quiet) as progress:
        task = progress.add_task("verifying", total=len(claims))
        for claim in claims:
            results.append(
                run_claim(claim, chosen, on_check=lambda c, k: progress.update(task, description=f"{c.id} {k.name}"))
            )
            progress.advance(task)
    data = report.report_data(results, chosen.name, time.perf_counter() - t0)
    report.write_json(data, args.json)
    report.write_markdown(data, args.markdown)

    table = Table(title=f"mqarkit verify ({chosen.name}, {data['seconds']} s): {report.summary_line(data)}")
    for col in ("claim", "status", "checks", "range covered / not checked / reason"):
        table.add_column(col, overflow="fold")
    style = {"verified": "green", "partial": "cyan", "failed": "bold red", "open": "yellow"}
    for c in data["claims"]:
        n_run = sum(ch["outcome"] != "not_run" for ch in c["checks"])
        detail = report.claim_detail(c)
        table.add_row(c["id"], f"[{style[c['status']]}]{c['status']}[/]", f"{n_run}/{len(c['checks'])}", detail)
    Console(quiet=args.quiet).print(table)
    console.print(f"wrote {args.json} and {args.markdown}")
    print(f"{report.summary_line(data)} ({args.markdown})")  # the summary line, on the terminal even with --quiet
    return 1 if data["summary"]["failed"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
