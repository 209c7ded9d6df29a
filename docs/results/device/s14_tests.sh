#!/usr/bin/env bash
# Fourteenth session, second command (on the machine the first left warm, the rest of the budget): the fused short
# convolution's GPU tests and the delta rules' family tests on the code the speed rows ran.
source docs/results/device/common.sh
BUDGET=185
T=tests/frontier
step tests 180 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go $T/test_short_conv_kernel.py \
  "$T/test_families_cuda.py" -k "short_conv or delta"
