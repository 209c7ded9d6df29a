#!/usr/bin/env bash
# Planned for the next session (not yet run): H3's and Hyena's d = 64 rows again with their profiles (both in [B]
# Fig. 2, 1.72 and 2.14 model-epochs/s against the 2.5 target, and never profiled), then the compiled delta rules'
# trial rows (device/s14_call2.sh) if time is left. First, on CUDA, what one example of each family's fast path costs
# in memory beside its micro-batch estimate (benchmarks/micro_batch_memory.py; so far measured on a CPU only, where
# the fla families take their plain forms): RWKV-7's estimate was corrected by reading fla's code, not by a measurement.
source docs/results/device/common.sh
step memory 150 python3 benchmarks/micro_batch_memory.py --device cuda --width 128 --out-dir $OUT/r
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
step speed_gc 330 python3 benchmarks/frontier_speed.py --families hyena h3 --widths 64 --steps 3 --resume \
  --remeasure hyena h3 --no-fla --generic --profile --time-budget-s 280 --out-dir $OUT/r
mkdir -p $OUT/trials
cp docs/results/frontier_speed_trials.json $OUT/trials/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed_compiled 300 env MQARKIT_COMPILE_DELTA_RULE=1 python3 benchmarks/frontier_speed.py --families delta_net \
  --widths 64 --steps 3 --resume --no-fla --generic --time-budget-s $(( L > 70 ? L - 60 : 10 )) --out-dir $OUT/trials
finish
