#!/usr/bin/env bash
# Run here (not on the device), from the repository's root, after a command that ran paper.sh's sweep:
#   bash docs/results/device/after_paper.sh /work/.device/N
# merges the records it brought back (r.tgz) into docs/results/NAME.jsonl, redraws the figure and table, writes the
# comparison with the paper, and prints what is left with its projection (at SEEDS, default "0 1 2", in stacks of
# MAXR runs, default 12: the speed table's). PRESET (default based-fig2) names the sweep.
set -euo pipefail
dir=${1:?usage: after_paper.sh DIR, the folder a device command returned its files to (e.g. /work/.device/3)}
PRESET=${PRESET:-based-fig2}; name=${PRESET//-/_}_paper
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar -xzf "$dir/r.tgz" -C "$tmp"
if [ ! -f "$tmp/r/$name.jsonl" ]; then echo "after_paper: $dir/r.tgz holds no r/$name.jsonl; nothing to merge"; exit 2; fi
mqarkit frontier merge --into "docs/results/$name.jsonl" "$tmp/r/$name.jsonl"
mqarkit plot --results "docs/results/$name.jsonl" --out "docs/results/figures/$name" --table "docs/results/${name}_table.md"
mqarkit frontier compare --paper "$PRESET" --results "docs/results/$name.jsonl" --out "docs/results/${name}_compare.md"
mqarkit frontier run --preset "$PRESET" --seeds ${SEEDS:-0 1 2} --out "docs/results/$name.jsonl" --dry-run \
  --max-stack-runs "${MAXR:-12}" \
  --speed-table docs/results/frontier_speed_families.json > "$tmp/left.json"
python3 - "$tmp/left.json" <<'PY'
import json
import sys

for s in json.load(open(sys.argv[1])):
    p = s["projection"]
    print(
        f"{s['name']}: {s['left']} of {s['runs']} runs left; {p['projected_runs']} projected at "
        f"{p['projected_s']:.0f} s of epochs + {p['projected_compile_s']:.0f} s compiling; "
        f"{p['unprojected_runs']} without a row"
    )
PY
