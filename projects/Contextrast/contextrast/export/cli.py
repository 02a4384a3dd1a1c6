"""What the command-line scripts in ``deploy/`` share: logging set-up and size / count arguments."""

import argparse
import logging
import sys
from typing import Tuple

__all__ = ["setup_logging", "parse_size", "positive_int"]

# Loggers of the exporters and of fvcore that report every pass or traced op at INFO.
_CHATTY_LOGGERS = ("onnxscript", "onnx_ir", "fvcore", "torch.onnx")


def setup_logging() -> None:
    """INFO logging to stdout for the CLI scripts, without the exporters' per-pass chatter."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def parse_size(text: str) -> Tuple[int, ...]:
    """``"512x1024"`` -> (512, 1024); ``"1x3x512x1024"`` -> (1, 3, 512, 1024).

    Raises:
        ValueError: for anything but positive integers joined by "x".
    """
    try:
        dims = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad size {text!r}: expected integers joined by 'x'") from None
    if not dims or min(dims) <= 0:
        raise ValueError(f"bad size {text!r}: every dimension must be positive")
    return dims


def positive_int(text: str) -> int:
    """argparse ``type`` of a count that must be at least 1 (argparse names the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
