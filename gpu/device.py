"""Device and dtype validation shared by the torch mixers, and the device context our Triton kernels launch in.

- :func:`resolve_device`: a requested device must exist (``cuda`` without a GPU, or an index past the device count, is
  a ``RuntimeError`` naming ``device``).
- :func:`resolve_dtype`: a dtype must be a ``torch.dtype`` in ``allowed`` (default float64/float32/bf16/fp16).
- :func:`check_parameter_memory`: a mixer whose parameters cannot fit in memory is refused before ``nn.Linear``
  allocates them (torch would fail late, or the kernel's out-of-memory killer would end the process without a word).
- :func:`check_sequence_input` / :func:`check_step_input`: every mixer checks its input before computing: a floating
  tensor (integers are rejected; every floating dtype is accepted, on the CPU too) of shape ``(B, N, d_model)`` /
  ``(B, d_model)``. A path with narrower needs checks them itself (fla's kernels: CUDA and float32/bf16/fp16, in
  :mod:`mqarkit.gpu.mixers.based`).
- :func:`launch_device`: a tensor's CUDA device made the current one around a Triton launch (Triton launches on the
  current device; one worker per GPU may hold tensors on another).
- :func:`kernel_switched_on`: the rule every one of our Triton kernels' dispatch begins with (a CUDA device or
  Triton's interpreter, and the kernel's environment switch not ``0``); :func:`runs_interpreted`, whether a kernel
  was defined under that interpreter.
"""

from __future__ import annotations

import contextlib
import os

import torch

from mqarkit.memory import check_memory

FLOAT_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def triton_version() -> str | None:
    """The installed triton's version, or None where triton is absent (CPU machines): for records and reports."""
    try:
        import triton
    except ImportError:  # an optional dependency (GPU machines), not part of this repository
        return None
    return triton.__version__


def launch_device(t: torch.Tensor):
    """``t``'s CUDA device as the current one for the block (a no-op context off CUDA: CPU, Triton's interpreter)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def runs_interpreted(kernel: object) -> bool:
    """Whether a ``@triton.jit`` kernel runs under Triton's interpreter (``TRITON_INTERPRET=1`` when it was defined:
    triton then makes it an ``InterpretedFunction``, which runs on CPU tensors)."""
    return type(kernel).__name__ == "InterpretedFunction"


def kernel_switched_on(device: torch.device, interpreted: bool, switch: str) -> bool:
    """Whether one of our Triton kernels may run on ``device``: a CUDA device, or any device under Triton's interpreter
    (``interpreted``: ``TRITON_INTERPRET=1`` when the kernel's module was imported), and the environment variable
    ``switch`` not ``0`` (read per call). Each kernel's dispatch adds its own needs (triton importable, dtypes,
    sizes)."""
    return (device.type == "cuda" or interpreted) and os.environ.get(switch, "1") != "0"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CPU; ``"cuda"`` only when CUDA is available (else ``RuntimeError`` naming ``device``)."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r}: not a torch device string ({err})") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r}: CUDA was requested but torch.cuda.is_available() is False")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def resolve_dtype(dtype: torch.dtype | None, *, allowed: tuple[torch.dtype, ...] = FLOAT_DTYPES) -> torch.dtype:
    """``None`` -> the default dtype; otherwise ``dtype`` must be in ``allowed`` (``ValueError`` naming ``dtype``)."""
    if dtype is None:
        dtype = torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype={dtype!r}: must be a torch.dtype")
    if dtype not in allowed:
        names = ", ".join(str(d).removeprefix("torch.") for d in allowed)
        raise ValueError(f"dtype={dtype}: unsupported here; allowed dtypes are {names}")
    return dtype


def check_sequence_input(x: torch.Tensor, d_model: int, *, name: str = "x") -> None:
    """``x`` must be a floating tensor of shape ``(B, N, d_model)`` with ``B, N >= 1``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"{name}.shape={tuple(x.shape)}: must be (B, N, d_model) with d_model={d_model}")
    if x.shape[-1] != d_model:
        raise ValueError(f"{name}.shape={tuple(x.shape)}: last dimension must equal d_model={d_model}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}.shape={tuple(x.shape)}: needs B >= 1 and N >= 1")
    if not x.is_floating_point():
        raise ValueError(f"{name}.dtype={x.dtype}: must be a floating dtype (float64/float32/bfloat16/float16)")


def check_step_input(x_t: torch.Tensor, d_model: int, *, name: str = "x_t") -> None:
    """``x_t`` must be a floating tensor of shape ``(B, d_model)``."""
    if not isinstance(x_t, torch.Tensor):
        raise TypeError(f"{name}: must be a torch.Tensor, got {type(x_t).__name__}")
    if x_t.dim() != 2 or x_t.shape[-1] != d_model:
        raise ValueError(f"{name}.shape={tuple(x_t.shape)}: must be (B, d_model) with d_model={d_model}")
    if not x_t.is_floating_point():
        raise ValueError(f"{name}.dtype={x_t.dtype}: must be a floating dtype")


def check_positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    """``value`` must be an ``int`` (not bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r}: must be an int")
    if value < minimum:
        raise ValueError(f"{name}={value}: must be >= {minimum}")
    return value


def check_parameter_memory(owner: str, numbers: int, *, parameter: str) -> None:
    """Refuse (``TooLargeError``) a module of at least ``numbers`` parameters in the default dtype that cannot fit in
    the memory available; ``parameter`` names the sizes, e.g. ``"d_model=100000"``."""
    itemsize = torch.empty((), dtype=torch.get_default_dtype()).element_size()
    check_memory(itemsize * numbers, parameter=parameter, what=f"the {numbers} parameters of {owner}")


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: must be one of {choices}")
    return value  # type: ignore[return-value]
