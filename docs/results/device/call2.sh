#!/usr/bin/env bash
# Gated DeltaNet's d=64 speed row under trial 1, then the d=128 rows.
source docs/results/device/common.sh
cp .gpu/speed.json $OUT/r/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed 500 env MQARKIT_FLA_GATED_DELTA_RULE=1 python3 benchmarks/frontier_speed.py --families gated_delta_net $FAMS --widths $WID --steps 3 --resume --remeasure gated_delta_net \
  --time-budget-s $(( L - 60 )) --out-dir $OUT/r
finish
