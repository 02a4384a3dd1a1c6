"""Paths of the repository that the tests use (configs, tools, scripts)."""

import os

__all__ = [
    "ROOT",
    "CONFIGS_DIR",
    "DEMO_CONFIG",
    "BASELINE_CONFIG",
    "INSTANT_TEST_CONFIG",
    "EXPORT_INSTANT_TEST_CONFIG",
    "TRAIN_NET",
    "tool",
]

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIGS_DIR = os.path.join(ROOT, "configs")
# The demo network (small dilated ResNet + ASPP head) with and without Contextrast.
DEMO_CONFIG = os.path.join(CONFIGS_DIR, "demo", "contextrast.yaml")
BASELINE_CONFIG = os.path.join(CONFIGS_DIR, "demo", "baseline.yaml")
# detectron2-style instant tests: the demo Contextrast model trained a few iterations at toy size
# (evaluated on synth_streets_val), and the same for the export tests (no warm-up, no evaluation).
INSTANT_TEST_CONFIG = os.path.join(
    CONFIGS_DIR, "quick_schedules", "demo_contextrast_instant_test.yaml"
)
EXPORT_INSTANT_TEST_CONFIG = os.path.join(
    CONFIGS_DIR, "quick_schedules", "demo_contextrast_export_instant_test.yaml"
)
TRAIN_NET = os.path.join(ROOT, "tools", "train_net.py")


def tool(*parts: str) -> str:
    """Path of a file of the repository, e.g. ``tool("deploy", "build_engine.py")``."""
    return os.path.join(ROOT, *parts)
