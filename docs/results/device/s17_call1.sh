#!/usr/bin/env bash
# Planned for the next session (not yet run): the GPU tests of what the fifteenth and sixteenth sessions changed
# without a device (the log-depth scan's launches compared to the gradients' scale and its default launch 2048x4;
# the sequential scan kernels, kernels/sequential_scan.py; the compiled model held to the low-precision rule; the gated
# backward's torch forms laid out in one copy), then the two scans timed side by side with the sequential kernels'
# launches (which decides whether MQARKIT_SCAN=sequential should become the Mamba family's default), then the Mamba
# rows under whichever scan is faster (Mamba is about 69% of the paper-budget estimate). The deterministic mode's
# cost, planned here before, ran in the sixteenth session (docs/determinism.md).
source docs/results/device/common.sh
T=tests/frontier
step tests 240 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  "$T/test_sequential_scan_kernel.py" "$T/test_selective_scan_kernel.py" \
  "$T/test_fast_paths_cuda.py::test_compiled_model_equals_eager_model[gated_delta_net-hybrid]" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[bf16-gated_delta_net]" \
  "$T/test_short_conv_kernel.py" "$T/test_fla_dqkwg.py" "$T/test_fla_wy.py" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-gla]"
step scan 150 python3 benchmarks/selective_scan.py --paths fused skipping sequential \
  --sequential-launches 128x1x8 512x2x8 512x4x16 1024x4x32 2048x8x8 --out-dir $OUT/r
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed 560 env ${SCAN_ENV:-MQARKIT_SCAN=log_depth} python3 benchmarks/frontier_speed.py --families mamba \
  gated_delta_net --widths 64 128 --steps 3 --resume --remeasure mamba gated_delta_net --no-fla --generic --profile \
  --time-budget-s $(( L > 70 ? L - 45 : 10 )) --out-dir $OUT/r
finish
