"""Bad input gets a clear error naming the parameter and the rule."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.device import kernel_switched_on, resolve_device, resolve_dtype
from mqarkit.gpu.mixers import BaseConv, BasedLinearAttention, SelectiveSSM, SlidingWindowAttention, SoftmaxAttention

MIXERS = [
    lambda: SoftmaxAttention(4),
    lambda: SlidingWindowAttention(4, window=2),
    lambda: BaseConv(4, 8, kernel_size=3),
    lambda: BasedLinearAttention(4, feature_dim=2),
    lambda: SelectiveSSM(4, d_state=2),
]


@pytest.mark.parametrize("make", MIXERS)
def test_input_shape_width_and_dtype(make) -> None:
    mixer = make()
    with pytest.raises(ValueError, match=r"x\.shape=\(2, 3, 5\): last dimension must equal d_model=4"):
        mixer(torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"x\.shape=\(3, 4\): must be \(B, N, d_model\)"):
        mixer(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"x\.dtype=torch\.int64: must be a floating dtype"):
        mixer(torch.zeros(1, 3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"x_t\.shape=\(1, 3\)"):
        mixer.step(torch.zeros(1, 3), mixer.init_state(1))
    with pytest.raises(ValueError, match=r"dtype=torch\.int32: unsupported"):
        mixer.init_state(1, dtype=torch.int32)
    with pytest.raises(ValueError, match="batch_size=0"):
        mixer.init_state(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is absent")
def test_cuda_without_gpu() -> None:
    with pytest.raises(RuntimeError, match=r"device='cuda': CUDA was requested"):
        resolve_device("cuda")
    with pytest.raises(RuntimeError, match="device='cuda'"):
        SoftmaxAttention(4).init_state(1, device="cuda")
    with pytest.raises(RuntimeError, match="impl='fla': needs a CUDA input"):
        BasedLinearAttention(4, feature_dim=2, impl="fla")(torch.zeros(1, 3, 4))


def test_constructor_rules() -> None:
    with pytest.raises(ValueError, match="num_heads=3: must divide d_model=4"):
        SoftmaxAttention(4, num_heads=3)
    with pytest.raises(ValueError, match="mask='bogus'"):
        SoftmaxAttention(4, mask="bogus")
    with pytest.raises(ValueError, match="window=None: mask='window' needs"):
        SoftmaxAttention(4, mask="window")
    with pytest.raises(ValueError, match="window=3: only allowed with mask='window'"):
        SoftmaxAttention(4, window=3)
    with pytest.raises(ValueError, match="window=0: must be >= 1"):
        SlidingWindowAttention(4, window=0)
    with pytest.raises(ValueError, match="kernel_size=9: must be <= seq_len=8"):
        BaseConv(4, 8, kernel_size=9)
    with pytest.raises(ValueError, match="semantics='hyena'"):
        BaseConv(4, 8, semantics="hyena")
    with pytest.raises(ValueError, match="layout='half'"):
        BasedLinearAttention(4, layout="half")
    with pytest.raises(ValueError, match="impl='triton'"):
        BasedLinearAttention(4, impl="triton")
    with pytest.raises(TypeError, match="d_state=2.0: must be an int"):
        SelectiveSSM(4, d_state=2.0)
    with pytest.raises(ValueError, match=r"x\.shape\[1\]=9: must be <= seq_len=8"):
        BaseConv(4, 8)(torch.zeros(1, 9, 4))


def test_dtype_helper() -> None:
    assert resolve_dtype(torch.bfloat16) is torch.bfloat16
    with pytest.raises(ValueError, match="dtype=torch.bfloat16: unsupported here"):
        resolve_dtype(torch.bfloat16, allowed=(torch.float32,))


def test_fla_path_rejects_float64_on_cuda_request() -> None:
    mixer = BasedLinearAttention(4, feature_dim=2, impl="fla").double()
    with pytest.raises(RuntimeError, match=r"dtype in float32/bf16/fp16 \(got torch\.float64\)"):
        mixer(torch.zeros(1, 3, 4, dtype=torch.float64))


def test_kernel_switch_rule(monkeypatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("MQARKIT_TEST_SWITCH", raising=False)
    assert not kernel_switched_on(cpu, False, "MQARKIT_TEST_SWITCH")  # a CPU tensor without the interpreter
    assert kernel_switched_on(cpu, True, "MQARKIT_TEST_SWITCH") and kernel_switched_on(
        cuda, False, "MQARKIT_TEST_SWITCH"
    )
    monkeypatch.setenv("MQARKIT_TEST_SWITCH", "0")
    assert not kernel_switched_on(cuda, False, "MQARKIT_TEST_SWITCH") and not kernel_switched_on(
        cpu, True, "MQARKIT_TEST_SWITCH"
    )
    monkeypatch.setenv("MQARKIT_TEST_SWITCH", "1")
    assert kernel_switched_on(cuda, False, "MQARKIT_TEST_SWITCH")
