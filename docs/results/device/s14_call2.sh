#!/usr/bin/env bash
# Planned for the next session (not yet run): the compiled delta rules' speed rows (the trial
# MQARKIT_COMPILE_DELTA_RULE=1) into the trials table, resumed from the committed one, with profiles.
source docs/results/device/common.sh
mkdir -p $OUT/trials
cp docs/results/frontier_speed_trials.json $OUT/trials/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed_compiled 560 env MQARKIT_COMPILE_DELTA_RULE=1 python3 benchmarks/frontier_speed.py --families delta_net gated_delta_net \
  --widths 64 --steps 3 --resume --no-fla --generic --profile --time-budget-s $(( L > 70 ? L - 60 : 10 )) --out-dir $OUT/trials
finish
