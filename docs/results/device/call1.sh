#!/usr/bin/env bash
# Gated DeltaNet's trial 1 on Hopper; Mamba's skipping scan kernels on the GPU; Mamba's d=64 speed row again.
source docs/results/device/common.sh
T=tests/frontier
step gdn_trial1 110 env MQARKIT_FLA_GATED_DELTA_RULE=1 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  $T/test_fla_wy.py "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[bf16-gated_delta_net]" \
  "$T/test_fast_paths_cuda.py::test_graphed_steps_of_the_recurrent_families_equal_eager_steps[gated_delta_net-hybrid]"
step scan_tests 130 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go $T/test_selective_scan_kernel.py \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-mamba]" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[bf16-mamba]" \
  "$T/test_fast_paths_cuda.py::test_compiled_model_equals_eager_model[mamba-mixer]" \
  "$T/test_fast_paths_cuda.py::test_graphed_steps_of_the_recurrent_families_equal_eager_steps[mamba-mixer]"
cp docs/results/frontier_speed_families.json $OUT/r/
L=$(( $(left) - 40 ))
step speed 400 python3 benchmarks/frontier_speed.py --families mamba --widths 64 --steps 3 --resume --remeasure mamba \
  --time-budget-s $(( L > 10 ? L - 60 : 10 )) --out-dir $OUT/r
finish
