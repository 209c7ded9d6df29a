#!/usr/bin/env bash
# Nineteenth session's plan for the next command: first benchmarks/epoch_check.py on H3's d = 64 stack of based-fig2
# (the nineteenth session trained H3's d = 128 stack at about twice the epoch time the speed table projects; this
# times the projection, one epoch's steps in segment order and shuffled, the evaluation and train_stack's own epochs,
# with the GPU's clocks, to say where the difference comes from), then paper.sh's sweep (PRESET, SEEDS, MAXR, SEL as
# there). EPOCH_CHECK (family:d, default h3:64) names another stack.
source docs/results/device/common.sh
IFS=: read -r ec_family ec_d <<< "${EPOCH_CHECK:-h3:64}"
step epoch_check ${EPOCH_CHECK_LIMIT:-330} python benchmarks/epoch_check.py --preset based-fig2 --family $ec_family \
  --d-model $ec_d --max-stack-runs 12 --epochs 3 --out-dir $OUT/r
cat $OUT/r/epoch_check.md 2>/dev/null
paper_sweep
finish
