#!/usr/bin/env bash
# Fifteenth session: the d = 128 rows still missing (RWKV-7, GLA, DeltaNet), resumed from the committed speed table.
source docs/results/device/common.sh
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed_128 560 python3 benchmarks/frontier_speed.py --families ${FAMS:-delta_net rwkv7 gla} --widths 128 --steps 3 --resume \
  --no-fla --generic --time-budget-s $(( L > 70 ? L - 45 : 10 )) --out-dir $OUT/r
finish
