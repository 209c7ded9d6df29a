#!/usr/bin/env bash
# Planned for the next session (not yet run): the sequential scan's GPU tests on its exp as it is now (two selects
# for arguments that are no decay, added after the seventeenth session's device calls), the GPU tests that the
# seventeenth session's limits cut (fla_dqkwg's gated families beyond Mamba-2, fla_wy, float32 GLA), then Mamba's
# d = 64 and 128 rows on the sequential kernels (MQARKIT_SCAN=sequential) beside Based and the log-depth rows of
# frontier_speed_families.json, which decides whether they become Mamba's scan. Follow with paper.sh for the rest of
# the sliding window (SEL="--families sliding_window", about 10 minutes).
source docs/results/device/common.sh
T=tests/frontier
step tests 200 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go "$T/test_sequential_scan_kernel.py" \
  "$T/test_fla_wy.py" "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-gla]" \
  "$T/test_fla_dqkwg.py"
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
L=$(( $(left) - 40 ))
step speed 400 env MQARKIT_SCAN=sequential python3 benchmarks/frontier_speed.py --families mamba --widths 64 128 \
  --steps 3 --resume --remeasure mamba --no-fla --profile --time-budget-s $(( L > 70 ? L - 45 : 10 )) --out-dir $OUT/r
finish
