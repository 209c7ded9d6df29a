#!/usr/bin/env bash
# Session 13, fourth command: the rest of the width-group GPU tests, then DeltaNet's and Gated DeltaNet's d = 64 speed
# rows measured again on the width-group code.
source docs/results/device/common.sh
T=tests/frontier
F=$T/test_families_cuda.py::test_family_on_cuda_equals_reference
G=$T/test_fast_paths_cuda.py::test_graphed_steps_of_the_recurrent_families_equal_eager_steps
step width_groups 250 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  "$G[delta_net-hybrid]" "$G[gated_delta_net-hybrid]" "$G[gla-hybrid]" "$F[float32-gla]" \
  "$T/test_fast_paths_cuda.py::test_compiled_model_equals_eager_model[gated_delta_net-hybrid]"
cp .gpu/speed.json $OUT/r/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed 500 python3 benchmarks/frontier_speed.py --families delta_net gated_delta_net --widths 64 --steps 3 --resume \
  --remeasure delta_net gated_delta_net --no-fla --generic --profile --time-budget-s $(( L > 70 ? L - 60 : 10 )) --out-dir $OUT/r
finish
