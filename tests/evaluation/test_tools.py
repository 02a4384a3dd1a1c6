"""tools/feature_metrics.py and tools/visualize.py on synth_streets_val with fresh weights."""

import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.data import DatasetCatalog
from helpers import BASELINE_CONFIG, DEMO_CONFIG, ROOT, SMALL_HEADS_OPTS, demo_cfg, tiny_model
from PIL import Image

from contextrast.evaluation.visualization import CAPTION_HEIGHT, GAP

CONFIGS = [BASELINE_CONFIG, DEMO_CONFIG]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Freshly initialised baseline and Contextrast checkpoints, as detectron2 saves them."""
    folder = tmp_path_factory.mktemp("weights")
    paths = []
    for config, seed in zip(CONFIGS, (1, 2)):
        path = str(folder / f"{os.path.basename(config)}.pth")
        model = tiny_model(demo_cfg(*SMALL_HEADS_OPTS, config=config), seed=seed)
        torch.save({"model": model.state_dict()}, path)
        paths.append(path)
    return paths


def run_tool(name, args):
    cmd = [sys.executable, os.path.join(ROOT, "tools", name)] + args + SMALL_HEADS_OPTS
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_feature_metrics_tool_compares_two_models(weights, tmp_path):
    out = tmp_path / "metrics.json"
    log = run_tool(
        "feature_metrics.py",
        ["--config-file", *CONFIGS, "--weights", *weights, "--names", "baseline", "Contextrast",
         "--dataset", "synth_streets_val", "--max-images", "2", "--output", str(out)],
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["baseline", "Contextrast"]
    for r in rows:
        assert r["dataset"] == "synth_streets_val" and r["l"] == 3
        assert 0 < r["A"] < 2 and 0 < r["U"] < 2 and 0 < r["U_l"] <= r["U"] + 1e-9
        assert 0 <= r["mIoU"] <= 100 and 2 <= r["num_classes"] <= 8
    assert rows[0]["A"] != rows[1]["A"]  # two different networks
    assert "Feature-level metrics on synth_streets_val (first 2 images)" in log
    assert "| baseline" in log and "| Contextrast" in log


def test_visualize_tool_writes_panels(weights, tmp_path):
    records = DatasetCatalog.get("synth_streets_val")[:2]
    run_tool(
        "visualize.py",
        ["--config-file", *CONFIGS, "--weights", *weights, "--num-images", "2",
         "--output", str(tmp_path / "panels")],
    )  # fmt: skip
    files = sorted(os.listdir(tmp_path / "panels"))
    assert files == sorted(os.path.basename(r["file_name"]) for r in records)
    h, w = records[0]["height"], records[0]["width"]
    for name in files:
        panel = Image.open(tmp_path / "panels" / name)
        # image | ground truth | baseline | contextrast, each under a caption band.
        assert panel.mode == "RGB" and panel.size == (4 * w + 3 * GAP, h + CAPTION_HEIGHT)
