"""The verify report: JSON (the data every other view reads) and Markdown.

The JSON is deterministic for a given budget apart from its timings (the top-level ``seconds`` and each check's
``seconds``): :func:`without_timings` strips those, and two runs of ``mqarkit verify`` compare equal after it.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from mqarkit.proofs_checks.registry import STATUSES, ClaimResult


def report_data(results: list[ClaimResult], budget_name: str, seconds: float) -> dict[str, Any]:
    claims = [r.as_dict() for r in results]
    counts = {s: sum(c["status"] == s for c in claims) for s in STATUSES}
    return {
        "budget": budget_name,
        "seconds": round(seconds, 2),
        "python": platform.python_version(),
        "summary": counts,
        "claims": claims,
    }


def without_timings(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the report data without the wall-clock fields (what two runs may differ in)."""
    out = {k: v for k, v in data.items() if k != "seconds"}
    out["claims"] = [
        {**c, "checks": [{k: v for k, v in ch.items() if k != "seconds"} for ch in c["checks"]]} for c in data["claims"]
    ]
    return out


def summary_line(data: dict[str, Any]) -> str:
    s = data["summary"]
    return ", ".join(f"{s[k]} {k}" for k in STATUSES)


def write_json(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict[str, Any]]) -> list[str]:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return out + ["| " + " | ".join(_cell(r.get(k, "")) for k in cols) + " |" for r in rows]


def claim_detail(c: dict[str, Any]) -> str:
    """The one-cell summary of a claim: what was checked, and for ``partial`` what was not."""
    if c["status"] == "open":
        return f"open: {c['reason']}"
    if c["status"] == "partial":
        return f"{c['covered']} — NOT CHECKED: {c['missing']}"
    return c["covered"]


def markdown(data: dict[str, Any]) -> str:
    lines = [
        "# mqarkit verify",
        "",
        f"Budget `{data['budget']}`, {data['seconds']} s: {summary_line(data)}. `verified`: the statement as written "
        "is checked over the ranges listed; `partial`: a special case or a finite core is checked, and the part that "
        "is not is named; `open`: nothing ran; `failed`: a check found a counterexample.",
        "",
        "| claim | status | checks | range covered / not checked / reason |",
        "|---|---|---|---|",
    ]
    for c in data["claims"]:
        n_run = sum(ch["outcome"] != "not_run" for ch in c["checks"])
        lines.append(f"| {c['id']} | {c['status']} | {n_run}/{len(c['checks'])} | {_cell(claim_detail(c))} |")
    lines += ["", "## Claims", ""]
    for c in data["claims"]:
        lines += [f"### {c['id']} ({c['status']})", "", f"**Statement.** {_cell(c['statement'])}", "",
                  f"Source: {c['source']}.", "", "**Checked.**", ""]  # fmt: skip
        for ch in c["checks"]:
            text = ch["covered"] or ch["reason"]
            lines.append(f"- `{ch['name']}` ({ch['kind']}, {ch['outcome']}, {ch['seconds']} s): {_cell(text)}")
            if ch["outcome"] == "failed":
                lines.append(f"  - counterexample: `{_cell(json.dumps(ch['counterexample'], default=str))[:2000]}`")
        if c["status"] == "partial":
            lines += ["", f"**Not checked.** {_cell(c['missing'])}"]
        if c["status"] == "open":
            lines += ["", f"**Open.** {_cell(c['reason'])}"]
        for ch in c["checks"]:
            table = ch["details"].get("table") if isinstance(ch["details"], dict) else None
            if table:
                lines += ["", f"`{ch['name']}`:", "", *_table(table)]
        lines.append("")
    return "\n".join(lines)


def write_markdown(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(data))
