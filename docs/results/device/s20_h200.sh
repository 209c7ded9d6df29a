#!/usr/bin/env bash
# Planned in the twentieth session for an H200 (not the speed table's device): the CUDA tests of the families on the
# long convolution (H3, Hyena, BaseConv: float32 and bf16), whose Toeplitz form became a custom autograd function in
# this session, then paper.sh's sweep (PRESET, SEEDS, MAXR, SEL) with what the budget leaves.
source docs/results/device/common.sh
step tests ${TESTS_LIMIT:-120} python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  tests/frontier/test_families_cuda.py -k "h3 or hyena or long_conv"
paper_sweep
finish
