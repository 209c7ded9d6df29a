#!/usr/bin/env bash
# Fourteenth session: DeltaNet's and Gated DeltaNet's d = 64 rows measured again with the fused short convolution
# (kernels/short_conv.py) in place of the eager chain, with profiles; resumed from the committed speed table.
source docs/results/device/common.sh
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed_fused 560 python3 benchmarks/frontier_speed.py --families delta_net gated_delta_net --widths 64 --steps 3 \
  --resume --remeasure delta_net gated_delta_net --no-fla --generic --profile \
  --time-budget-s $(( L > 70 ? L - 45 : 10 )) --out-dir $OUT/r
finish
