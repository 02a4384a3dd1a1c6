"""Paths of the repository that the tests use (configs, tools, scripts)."""

import os

__all__ = ["ROOT", "CONFIGS_DIR", "DEMO_CONFIG", "BASELINE_CONFIG", "TRAIN_NET", "tool"]

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIGS_DIR = os.path.join(ROOT, "configs")
# The demo network (small dilated ResNet + ASPP head) with and without Contextrast.
DEMO_CONFIG = os.path.join(CONFIGS_DIR, "demo", "contextrast.yaml")
BASELINE_CONFIG = os.path.join(CONFIGS_DIR, "demo", "baseline.yaml")
TRAIN_NET = os.path.join(ROOT, "tools", "train_net.py")


def tool(*parts: str) -> str:
    """Path of a file of the repository, e.g. ``tool("deploy", "build_engine.py")``."""
    return os.path.join(ROOT, *parts)
