"""Fixtures of the deploy tests: a demo model trained a few iterations with Contextrast, and
ONNX exports of it and of the baseline, made once per session by the real scripts."""

import os
import subprocess
import sys

import pytest
from deploy_test_utils import BASELINE, DEMO, ROOT, TRAIN_OPTS


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory) -> str:
    """``model_final.pth`` of ``tools/train_net.py`` on the Contextrast demo config."""
    out = str(tmp_path_factory.mktemp("deploy_train"))
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", DEMO]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        cmd + TRAIN_OPTS + ["OUTPUT_DIR", out],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    path = os.path.join(out, "model_final.pth")
    assert os.path.isfile(path)
    return path


def _export(argv) -> None:
    from deploy import export_onnx

    assert export_onnx.main(argv) == 0


@pytest.fixture(scope="session")
def contextrast_onnx(demo_checkpoint, tmp_path_factory) -> str:
    """Dynamic ONNX export of the trained Contextrast checkpoint."""
    path = str(tmp_path_factory.mktemp("deploy_onnx") / "contextrast.onnx")
    _export(["--config-file", DEMO, "--weights", demo_checkpoint, "--output", path, "--dynamic"])
    return path


@pytest.fixture(scope="session")
def baseline_onnx(tmp_path_factory) -> str:
    """Dynamic ONNX export of the baseline config (random weights: only the graph matters)."""
    path = str(tmp_path_factory.mktemp("deploy_onnx") / "baseline.onnx")
    _export(["--config-file", BASELINE, "--output", path, "--dynamic"])
    return path
