"""The verify report: JSON (the data every other view reads) and Markdown."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from mqarkit.proofs_checks.registry import ClaimResult


def report_data(results: list[ClaimResult], budget_name: str, seconds: float) -> dict[str, Any]:
    claims = [r.as_dict() for r in results]
    counts = {s: sum(c["status"] == s for c in claims) for s in ("verified", "failed", "open")}
    return {
        "budget": budget_name,
        "seconds": round(seconds, 2),
        "python": platform.python_version(),
        "summary": counts,
        "claims": claims,
    }


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(data: dict[str, Any]) -> str:
    s = data["summary"]
    lines = [
        "# mqarkit verify",
        "",
        f"Budget `{data['budget']}`, {data['seconds']} s: {s['verified']} verified, {s['failed']} failed, "
        f"{s['open']} open. A claim is verified only for the ranges listed.",
        "",
        "| claim | status | checks | range covered / reason |",
        "|---|---|---|---|",
    ]
    for c in data["claims"]:
        n_run = sum(ch["outcome"] != "not_run" for ch in c["checks"])
        detail = c["covered"] if c["status"] != "open" else c["reason"]
        lines.append(f"| {c['id']} | {c['status']} | {n_run}/{len(c['checks'])} | {_cell(detail)} |")
    lines += ["", "## Claims", ""]
    for c in data["claims"]:
        lines += [f"### {c['id']} ({c['status']}): {_cell(c['statement'])}", "", f"Source: {c['source']}.", ""]
        for ch in c["checks"]:
            text = ch["covered"] or ch["reason"]
            lines.append(f"- `{ch['name']}` ({ch['kind']}, {ch['outcome']}, {ch['seconds']} s): {_cell(text)}")
            if ch["outcome"] == "failed":
                lines.append(f"  - counterexample: `{_cell(json.dumps(ch['counterexample'], default=str))[:2000]}`")
        if c["status"] == "open":
            lines.append(f"- open: {_cell(c['reason'])}")
        lines.append("")
    return "\n".join(lines)


def write_markdown(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(data))
