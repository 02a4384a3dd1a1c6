"""Scale-aware comparison of a computation with its reference (ONNX Runtime, TensorRT or CUDA
against PyTorch on the CPU, one code path against another).

Two float32 implementations of the same computation round differently: other kernels, another
summation order, another instruction set (AVX2 and AVX-512 machines pick different oneDNN and
ONNX Runtime kernels). Their difference grows with the magnitude of the values, about 1e-7 of it
per operation, so an absolute tolerance that holds for logits of order 1 fails for logits of
order 100 on some CPUs and not on others. :func:`assert_close_to_reference` bounds the largest
difference by a fraction of the largest reference magnitude instead:

    max |actual - reference|  <=  rtol * max |reference|  +  atol

The bound is relative to the *largest* magnitude rather than element-wise: a small element that
shares accumulations with large ones (a convolution output next to a strong activation) inherits
their rounding error, so an element-wise relative tolerance would be too strict for it.
"""

from typing import Union

import numpy as np
import torch

__all__ = [
    "FP32_RTOL",
    "FP32_ATOL",
    "TF32_RTOL",
    "assert_close_to_reference",
]

ArrayLike = Union[np.ndarray, torch.Tensor, float]

# Float32 results of another runtime or another kernel choice for the same graph (ONNX Runtime
# vs PyTorch, CUDA vs CPU with TF32 off). Measured for the demo checkpoints with ONNX Runtime
# graph optimisations off / basic / all and 1 / 2 intra-op threads: 5e-7 to 7e-7 of max |ref|;
# HRNetV2-W48 1e-6 (CPU) and 3e-6 (H200) (deploy/README.md). 1e-5 leaves a margin of 3x or more.
FP32_RTOL = 1e-5
# Floor of the bound, for references that are (nearly) all zero; negligible otherwise.
FP32_ATOL = 1e-6
# TensorRT / cuDNN with TF32 matrix units: operands rounded to 10 mantissa bits (~1e-3 each).
TF32_RTOL = 1e-2


def _as_float64(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def assert_close_to_reference(
    actual: ArrayLike,
    reference: ArrayLike,
    *,
    rtol: float,
    atol: float = 0.0,
    what: str = "values",
) -> float:
    """Assert ``max|actual - reference| <= rtol * max|reference| + atol`` (same shapes, finite).

    Args:
        actual: the computation under test (numpy array, torch tensor or scalar).
        reference: what it should equal (same shape).
        rtol: tolerance as a fraction of ``max|reference|``; see :data:`FP32_RTOL` and
            :data:`TF32_RTOL` for the usual values.
        atol: absolute floor of the bound (for references that are all zero).
        what: name of the values, for the failure message.

    Returns:
        The relative difference ``max|actual - reference| / max|reference|`` (0 for two zeros).
    """
    a, ref = _as_float64(actual), _as_float64(reference)
    assert a.shape == ref.shape, f"{what}: shape {a.shape} != reference shape {ref.shape}"
    assert np.isfinite(a).all(), f"{what}: non-finite values"
    assert np.isfinite(ref).all(), f"{what}: non-finite reference values"
    if a.size == 0:
        return 0.0
    diff = float(np.abs(a - ref).max())
    scale = float(np.abs(ref).max())
    bound = rtol * scale + atol
    relative = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
    assert diff <= bound, (
        f"{what}: max |difference| {diff:.3g} > {bound:.3g} = {rtol:g} x max |reference| "
        f"{scale:.3g} + {atol:g} (relative difference {relative:.3g})"
    )
    return relative
