#!/usr/bin/env bash
# Planned in the twenty-first session, for whichever card comes. On an H100 (the speed table's device): the speed rows
# of FAMS (default h3 rwkv4) at WID (default 64) in the presets' topology, resumed from the committed table, as
# s20_call1.sh's first step. On any card: paper.sh's sweep (PRESET, SEEDS, MAXR, SEL) with what the budget leaves,
# starting no stack projected past it (common.sh's paper_sweep).
source docs/results/device/common.sh
GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "gpu: $GPU" | tee -a $OUT/steps.txt
if [[ "$GPU" == *H100* ]] && (( ${SPEED_LIMIT:-240} > 0 )); then
  cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
  L=${SPEED_LIMIT:-240}
  step speed $L python3 benchmarks/frontier_speed.py --families ${FAMS:-h3 rwkv4} --widths ${WID:-64} \
    --steps 3 --resume --no-fla --generic --time-budget-s $(( L - 90 )) --out-dir $OUT/r
  SPEED_JSON=$OUT/r/frontier_speed_families.json  # the sweep's projections take the rows just measured
fi
paper_sweep
finish
