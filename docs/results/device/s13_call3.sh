#!/usr/bin/env bash
# Session 13, third command: Mamba's d = 256 smoke stack of based-fig2 first (its first two tries here ran out of
# step time while compiling), then GLA's GPU tests on the width-group code.
source docs/results/device/common.sh
T=tests/frontier
F=$T/test_families_cuda.py::test_family_on_cuda_equals_reference
G=$T/test_fast_paths_cuda.py::test_graphed_steps_of_the_recurrent_families_equal_eager_steps
P=smoke_based_fig2_1epoch.jsonl
cp docs/results/$P $OUT/r/$P
step smoke_mamba_256 390 mqarkit frontier run --preset based-fig2 --families mamba --d-models 256 --epochs 1 --no-progress --out $OUT/r/$P
step width_groups 300 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  "$F[bf16-gla]" "$F[float32-gla]" "$G[delta_net-hybrid]" "$G[gated_delta_net-hybrid]" "$G[gla-hybrid]" \
  "$T/test_fast_paths_cuda.py::test_compiled_model_equals_eager_model[gated_delta_net-hybrid]"
finish
