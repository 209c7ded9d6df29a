#!/usr/bin/env bash
# Seventeenth session, after s17_call1.sh's sequential-scan test failed at N = 1024 (tl.exp's rounding, repeated at
# every position): the sequential kernels with their own exp (_accurate_exp) tested again, with the GPU tests that
# s17_call1.sh's time limit cut; then the scans timed again (the accurate exp's cost on the sequential path).
source docs/results/device/common.sh
T=tests/frontier
step tests 200 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go "$T/test_sequential_scan_kernel.py" \
  "$T/test_fla_dqkwg.py" "$T/test_fla_wy.py" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-gla]"
step scan 120 python3 benchmarks/selective_scan.py --paths fused skipping sequential \
  --sequential-launches 128x1x8 512x2x8 2048x8x8 --out-dir $OUT/r
finish
