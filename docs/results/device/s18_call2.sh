#!/usr/bin/env bash
# Written in the eighteenth session for a card whose timings would not compare with the H100 speed table (not yet
# run: no lend came): the GPU tests of s18_call1.sh (the sequential scan's on its exp as it is now, fla_wy, float32
# GLA, fla_dqkwg) under TESTS_S seconds (200), then paper.sh's sweep with the remaining budget (PRESET, SEEDS, MAXR,
# SEL as paper.sh takes them).
source docs/results/device/common.sh
T=tests/frontier
step tests ${TESTS_S:-200} python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  "$T/test_sequential_scan_kernel.py" "$T/test_fla_wy.py" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-gla]" "$T/test_fla_dqkwg.py"
paper_sweep
finish
