#!/usr/bin/env bash
# Planned (not yet run; the sixteenth session ran its determinism step alone): the GPU tests of what the fifteenth
# session changed without a device (the scan's launches compared to the gradients' scale and its new default launch
# 2048x4; the compiled model held to the low-precision rule; the gated backward's torch forms laid out in one copy),
# the deterministic mode's cost (benchmarks/ determinism.py, never run on a GPU), then the Mamba rows the new backward
# launch moves (Mamba is 69% of the paper-budget estimate) and Gated DeltaNet's if time is left.
source docs/results/device/common.sh
T=tests/frontier
step tests 240 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  "$T/test_selective_scan_kernel.py" \
  "$T/test_fast_paths_cuda.py::test_compiled_model_equals_eager_model[gated_delta_net-hybrid]" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[bf16-gated_delta_net]" \
  "$T/test_short_conv_kernel.py" "$T/test_fla_dqkwg.py" "$T/test_fla_wy.py" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-gla]"
step determinism 150 python3 benchmarks/determinism.py --device cuda --time-budget-s 100 --out-dir $OUT/r
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed 560 python3 benchmarks/frontier_speed.py --families mamba gated_delta_net --widths 64 128 --steps 3 \
  --resume --remeasure mamba gated_delta_net --no-fla --generic --profile \
  --time-budget-s $(( L > 70 ? L - 45 : 10 )) --out-dir $OUT/r
finish
