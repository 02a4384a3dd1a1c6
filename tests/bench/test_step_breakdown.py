"""bench/step_breakdown.py: the parts of a training step, each timed alone (smoke test on the demo
network; the numbers themselves are not checked)."""

import json
import os
import subprocess
import sys

from helpers import ROOT

SCRIPT = os.path.join(ROOT, "bench", "step_breakdown.py")


def test_breakdown_times_every_part_of_a_contextrast_step(tmp_path):
    out = tmp_path / "breakdown.json"
    cmd = [sys.executable, SCRIPT, "--config", "configs/demo/contextrast.yaml", "--batch", "2",
           "--size", "64", "64", "--rounds", "2", "--warmup", "1", "--threads", "1",
           "--data-batches", "0", "--json", str(out),
           "MODEL.CONTEXTRAST.PROJ_DIM", "16"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parts = json.loads(out.read_text())["parts_ms"]
    expected = {
        "full step",
        "backbone",
        "head + CE loss",
        "optimizer step",
        "criterion (anchors, sampling, BANE, loss)",
        "in criterion: class anchors (res2)",
        "in criterion: BANE selection (res2)",
    }
    expected |= {f"projection head res{i}" for i in (2, 3, 4, 5)}  # fmt: skip
    assert set(parts) == expected
    assert all(ms > 0 for ms in parts.values())
    assert "sum of the parts" in proc.stdout
