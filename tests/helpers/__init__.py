"""Helpers shared by the test files."""

from .numeric import FP32_ATOL, FP32_RTOL, TF32_RTOL, assert_close_to_reference

__all__ = ["FP32_ATOL", "FP32_RTOL", "TF32_RTOL", "assert_close_to_reference"]
