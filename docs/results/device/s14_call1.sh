#!/usr/bin/env bash
# Planned (not yet run; the fourteenth session's device time went elsewhere): the GPU tests still waiting (the delta
# rules' output-norm kernel, kernels/head_norm.py, and DeltaNet's and Gated DeltaNet's bf16 family tests through it
# and the fused short convolution; the scan's backward launches; the compiled Gated DeltaNet model on fla's route;
# GLA's float32 test on the width-group code), then the fused short convolution's and output norm's benchmarks
# and the scan benchmark with other backward launches. After it, device/s14_fused.sh again: the delta rules' rows with
# both kernels.
source docs/results/device/common.sh
T=tests/frontier
step tests 330 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  "$T/test_head_norm_kernel.py" "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[bf16-delta_net]" \
  "$T/test_selective_scan_kernel.py::test_backward_launches_on_cuda_give_the_default_launchs_gradients" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[bf16-gated_delta_net]" \
  "$T/test_fast_paths_cuda.py::test_compiled_model_equals_eager_model[gated_delta_net-hybrid]" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-gla]"
step shortconv 90 python3 benchmarks/short_conv.py --out-dir $OUT/r --repeats 20
step headnorm 60 python3 benchmarks/head_norm.py --out-dir $OUT/r --repeats 20
step scan 200 python3 benchmarks/selective_scan.py --out-dir $OUT/r --backward-launches 1024x4 1024x8 512x4 2048x4 4096x8
finish
