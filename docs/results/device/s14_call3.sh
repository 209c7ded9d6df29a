#!/usr/bin/env bash
# Planned for the next session (not yet run): GLA's d = 64 row measured again (width groups, no gathers in a sweep's
# order) with its profile by kernel kind, then the d = 128 rows still missing (RWKV-7, GLA, DeltaNet), resumed.
source docs/results/device/common.sh
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
step speed_gla 240 python3 benchmarks/frontier_speed.py --families gla --widths 64 --steps 3 --resume --remeasure gla \
  --no-fla --generic --profile --time-budget-s 150 --out-dir $OUT/r
L=$(( $(left) - 40 ))
step speed_128 400 python3 benchmarks/frontier_speed.py --families rwkv7 gla delta_net --widths 128 --steps 3 --resume \
  --no-fla --generic --time-budget-s $(( L > 70 ? L - 60 : 10 )) --out-dir $OUT/r
finish
