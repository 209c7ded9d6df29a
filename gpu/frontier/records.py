"""The JSONL results file: one finished run per line.

Writes are atomic: the new file content goes to a temporary file in the same folder, is fsync'ed and ``os.replace``'d
over the old one. Readers ignore lines that do not parse (none should exist).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


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
