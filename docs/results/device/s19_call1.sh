#!/usr/bin/env bash
# Planned in the nineteenth session for the next command (H100: the speed table's device). H3's d = 128 stack of
# based-fig2 trained at 26.6 s an epoch, twice the speed table's 13.4 s; the table had measured H3, Hyena, Mamba and
# RWKV-4 as hybrids (a short BaseConv, then the mixer) while their presets train the mixer in both layers
# (layers = "mixer"), which would account for the doubling (an inference until these rows are measured). The table now builds its stacks in the presets' topology and measures again, on --resume, every
# earlier row of other models. Steps: (1) the speed rows of FAMS (default h3 hyena mamba rwkv4) at WID (default 64)
# in that topology, resumed from the committed table; (2) benchmarks/epoch_check.py on EPOCH_CHECK (family:d, default
# h3:64): the projection against train_stack's own epochs, GPU clocks beside; (3) paper.sh's sweep (PRESET, SEEDS,
# MAXR, SEL as there) with what the budget leaves.
source docs/results/device/common.sh
cp docs/results/frontier_speed_families.json $OUT/r/frontier_speed_families.json
L=${SPEED_LIMIT:-300}
step speed $L python3 benchmarks/frontier_speed.py --families ${FAMS:-h3 hyena mamba rwkv4} --widths ${WID:-64} \
  --steps 3 --resume --no-fla --generic --time-budget-s $(( L - 90 )) --out-dir $OUT/r
IFS=: read -r ec_family ec_d <<< "${EPOCH_CHECK:-h3:64}"
step epoch_check ${EPOCH_CHECK_LIMIT:-240} python3 benchmarks/epoch_check.py --preset based-fig2 --seeds 0 1 2 \
  --family $ec_family --d-model $ec_d --max-stack-runs 12 --epochs 3 --out-dir $OUT/r
cat $OUT/r/epoch_check.md 2>/dev/null
paper_sweep
finish
