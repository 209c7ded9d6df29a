"""``mqarkit.gpu.kernel_breakdown``: kernels sorted by kind from their names (names as the H100 profiles printed
them), only kernel rows summed, the shares line."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch

from mqarkit.gpu.kernel_breakdown import KINDS, breakdown, kernel_kind, shares, triton_kernel_names

HAS_TRITON = importlib.util.find_spec("triton") is not None
OURS = {"_scan_backward": "mqarkit", "chunk_fwd_kernel_o": "fla"}

NAMED = [
    ("void at::native::elementwise_kernel<128, 2, at::native::gpu_kernel_impl_nocast<...> >(int, ...)", "aten"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>, ...>", "aten"),
    ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, ...> >(...)", "aten"),
    ("void at_cuda_detail::cub::DeviceRadixSortOnesweepKernel<...>", "aten"),
    ("triton_poi_fused__to_copy_add_mul_silu_0", "inductor"),
    ("triton_red_fused_sum_3", "inductor"),
    ("triton_per_fused_native_layer_norm_1", "inductor"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "matmul"),
    ("nvjet_tst_128x64_64x4_2x1_v_bz_coopA_NNT", "matmul"),
    ("void cutlass::Kernel2<cutlass_80_tensorop_s16816gemm_bf16_128x128_32x3_nn_align8>(...)", "matmul"),
    ("void regular_fft<256u, EPT_16, 16u, 4u, ...>(...)", "fft"),
    ("void vector_fft_c2r<...>(...)", "fft"),
    ("Memcpy DtoD (Device -> Device)", "memcpy/memset"),
    ("Memset (Device)", "memcpy/memset"),
    ("_scan_backward", "mqarkit"),
    ("chunk_fwd_kernel_o", "fla"),
    ("cudnn_depthwise_conv_kernel", "other"),
]


@pytest.mark.parametrize(("name", "kind"), NAMED)
def test_a_kernel_is_sorted_by_its_name(name, kind):
    assert kernel_kind(name, OURS) == kind


def _event(key: str, us: float, device: bool = True, annotation: bool = False) -> SimpleNamespace:
    kind = torch.autograd.DeviceType.CUDA if device else torch.autograd.DeviceType.CPU
    return SimpleNamespace(key=key, device_type=kind, self_device_time_total=us, is_user_annotation=annotation)


def test_breakdown_sums_the_kernel_rows_only():
    """A CPU op's self device time is its kernels' again (``aten::mul`` beside ``elementwise_kernel``): only CUDA
    kernel rows count, a GPU user annotation (a span, not a kernel) neither."""
    events = [
        _event("aten::mul", 2000.0, device=False),  # the op: its kernels' time again
        _event("void at::native::elementwise_kernel<128, 2>", 2000.0),
        _event("chunk_fwd_kernel_o", 500.0),
        _event("triton_poi_fused_mul_0", 250.0),
        _event("ProfilerStep#1", 9000.0, annotation=True),
    ]
    ms = breakdown(events, OURS)
    assert set(ms) == {*KINDS, "total"}
    assert (ms["aten"], ms["fla"], ms["inductor"], ms["total"]) == (2.0, 0.5, 0.25, 2.75)
    assert ms["matmul"] == ms["other"] == ms["mqarkit"] == 0.0
    assert shares(ms) == "aten 73%, fla 18%, inductor 9%"
    assert shares(breakdown([], OURS)) == "no CUDA kernels"


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (the names are of triton.jit functions)")
def test_our_triton_kernels_are_known_by_name():
    import mqarkit.gpu.frontier.kernels.selective_scan  # noqa: F401  (defines the scan's kernels)

    names = triton_kernel_names()
    assert names["_scan_forward"] == names["_scan_backward"] == "mqarkit"
    assert kernel_kind("_scan_forward", names) == "mqarkit"
