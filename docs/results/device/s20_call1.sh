#!/usr/bin/env bash
# Planned in the twentieth session (H100: the speed table's device). (1) The speed rows of FAMS (default h3 hyena
# mamba rwkv4) at WID (default 64) in the presets' topology (layers = "mixer"), resumed from the committed table, as
# s19_call1.sh; (2) Mamba's d = 64 row again under MQARKIT_SCAN=sequential into a table of its own ($OUT/seq), beside
# its Based row, so that the two scans are timed in training on the same machine; (3) paper.sh's sweep (PRESET, SEEDS,
# MAXR, SEL) with what the budget leaves. Between (1) and (2), the CUDA tests of the families on the long convolution
# (H3, Hyena, BaseConv: float32 and bf16), whose Toeplitz form became a custom autograd function in this session.
# benchmarks/epoch_check.py (s19_call1.sh's second step) waits.
source docs/results/device/common.sh
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
L=${SPEED_LIMIT:-300}
step speed $L python3 benchmarks/frontier_speed.py --families ${FAMS:-h3 hyena mamba rwkv4} --widths ${WID:-64} \
  --steps 3 --resume --no-fla --generic --time-budget-s $(( L - 90 )) --out-dir $OUT/r
step tests ${TESTS_LIMIT:-120} python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  tests/frontier/test_families_cuda.py -k "h3 or hyena or long_conv"
mkdir -p $OUT/seq
S=${SEQ_LIMIT:-150}
step speed_sequential $S env MQARKIT_SCAN=sequential python3 benchmarks/frontier_speed.py --families mamba \
  --widths ${WID:-64} --steps 3 --no-fla --generic --time-budget-s $(( S - 60 )) --out-dir $OUT/seq
cp $OUT/seq/frontier_speed_families.json $OUT/r/frontier_speed_families_sequential.json 2>/dev/null
cp $OUT/seq/frontier_speed_families.md $OUT/r/frontier_speed_families_sequential.md 2>/dev/null
paper_sweep
finish
