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
    "UPDATE_RTOL",
    "assert_close_to_reference",
    "assert_updates_close",
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


# Weights trained by two float32 computations of the same steps (one process vs two, whose
# gradient sums run in another order). Rounding alone: the updates of 4 SGD steps of the demo
# network agree to 1e-5..5e-4 of the largest update per tensor (mostly the weights' own rounding).
# But BANE picks its negatives from the argmax of the logits: where two logits of a pixel tie to
# float32 rounding, the other run can pick another class there and another negative set, which
# moved the updates by 1.1% of their size (tests/engine/test_launchers.py with
# ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2: the failure this tolerance was set for). A
# learning rate 10% off moves them by 8-9%, a missing gradient average by 50-90%.
UPDATE_RTOL = 3e-2


def assert_updates_close(
    actual: ArrayLike,
    reference: ArrayLike,
    initial: ArrayLike,
    *,
    rtol: float,
    steps: int,
    what: str = "weights",
) -> float:
    """Assert that two trainings from the same ``initial`` weights moved them alike.

    Compares the updates ``actual - initial`` and ``reference - initial``, relative to the
    largest reference update: the weights themselves are usually much larger than what a few
    steps change, so a tolerance relative to the weights would hide a wrong update and one
    relative to them at float32 precision fails on the rounding of the updates. The floor of
    the bound is the rounding of the weights: half a float32 ulp of ``max |reference|`` per step
    in each run.

    Args:
        actual, reference: the weights after training (same shape).
        initial: the weights both started from.
        rtol: tolerance as a fraction of ``max |reference - initial|`` (:data:`UPDATE_RTOL`).
        steps: optimizer steps of each training.
        what: name of the weights, for the failure message.

    Returns:
        The relative difference of the updates (see :func:`assert_close_to_reference`).
    """
    a, ref, start = _as_float64(actual), _as_float64(reference), _as_float64(initial)
    assert ref.shape == start.shape, f"{what}: shape {ref.shape} != initial shape {start.shape}"
    rounding = steps * float(np.finfo(np.float32).eps) * float(np.abs(ref).max(initial=0.0))
    return assert_close_to_reference(
        a - start, ref - start, rtol=rtol, atol=rounding, what=f"{what} (update)"
    )
