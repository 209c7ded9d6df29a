#!/usr/bin/env bash
# Planned for the next session's first command (not yet run): the GPU tests still waiting (GLA's float32 test on the
# width-group code, the compiled Gated DeltaNet model on fla's route, the scan's backward launches), then the scan
# benchmark with other backward launches (which launch the backward, about 6x the forward, should take).
source docs/results/device/common.sh
T=tests/frontier
step tests 260 python3 -m pytest -p no:cacheprovider -m gpu --report-as-you-go \
  "$T/test_selective_scan_kernel.py::test_backward_launches_on_cuda_give_the_default_launchs_gradients" \
  "$T/test_fast_paths_cuda.py::test_compiled_model_equals_eager_model[gated_delta_net-hybrid]" \
  "$T/test_families_cuda.py::test_family_on_cuda_equals_reference[float32-gla]"
step scan 240 python3 benchmarks/selective_scan.py --out-dir $OUT/r --backward-launches 1024x4 1024x8 512x4 2048x4 4096x8
finish
