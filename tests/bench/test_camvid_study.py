"""Smoke tests of bench/camvid_study.py: the report from finished runs, and one tiny real run."""

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

SCRIPT = os.path.join(ROOT, "bench", "camvid_study.py")
CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist"]  # fmt: skip


def _fake_result(setting, seed):
    miou = {"ce": 20.0, "ccl": 21.0, "ccl_bane": 22.0}[setting] + seed
    return {
        "config": f"configs/camvid/study_cpu_{setting}.yaml", "seed": seed, "opts": [],
        "command": "python tools/train_net.py --config-file x", "mIoU": miou, "pACC": 50.0,
        "mACC": 30.0, "per_class_IoU": {c: miou for c in CLASSES}, "wall_s": 60.0,
        "resumed": False,
        "curve": {"iteration": [19, 39], "total_loss": [2.0, 1.5], "loss_sem_seg": [1.9, 1.4],
                  "loss_contrast": [None, None] if setting == "ce" else [0.1, 0.1]},
    }  # fmt: skip


def test_report_only_skips_finished_runs_and_writes_report(tmp_path):
    out = tmp_path / "study"
    for setting in ("ce", "ccl", "ccl_bane"):
        for seed in (0, 1):
            run = out / f"{setting}_seed{seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps(_fake_result(setting, seed)))
    report = tmp_path / "docs" / "study.md"
    reading, ablations = tmp_path / "reading.md", tmp_path / "ablations.md"
    reading.write_text("## Reading\n\nhand-written\n")
    ablations.write_text("## Ablations\n\n| variant |\n")
    cmd = [sys.executable, SCRIPT, "--preset", "cpu", "--seeds", "0", "1", "--report-only",
           "--output-dir", str(out), "--report", str(report),
           "--notes", str(reading), str(ablations)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = report.read_text()
    assert "| CE only | 2 | 20.50 +- 0.71 |" in text
    assert "| CE + CCL + BANE | 2 | 22.50 +- 0.71 | +2.00 +- 0.00 (2/2 seeds > 0) |" in text
    assert "| +1.00 +- 0.00 (2/2 seeds > 0) |" in text  # vs CE + CCL
    assert text.index("| Sky |") < text.index("| Bicyclist |")  # dataset class order
    # The notes follow the table, in the order given.
    assert text.index("| CE only |") < text.index("hand-written") < text.index("## Ablations")
    assert (tmp_path / "docs" / "study_miou.png").stat().st_size > 0
    assert (tmp_path / "docs" / "study_loss.png").stat().st_size > 0
    summary = json.loads((out / "results.json").read_text())
    assert [r["seed"] for r in summary["runs"]["ccl"]] == [0, 1]


@pytest.mark.slow  # ~20 s unloaded, about a minute on 2 shared cores: two processes + evaluation
def test_one_tiny_run_on_real_camvid(tmp_path, camvid_root):
    out = tmp_path / "study"
    env = dict(os.environ, DETECTRON2_DATASETS=os.path.dirname(camvid_root))
    cmd = [
        sys.executable, SCRIPT, "--preset", "cpu", "--seeds", "0", "--settings", "ccl_bane",
        "--output-dir", str(out), "--report", str(tmp_path / "r.md"),
        "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "INPUT.CROP.SIZE", "(64, 64)",
        "INPUT.MIN_SIZE_TEST", "32", "INPUT.MAX_SIZE_TEST", "48", "DATALOADER.NUM_WORKERS", "0",
        "MODEL.CONTEXTRAST.PROJ_DIM", "16",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "ccl_bane_seed0" / "result.json").read_text())
    assert 0 <= result["mIoU"] <= 100 and set(result["per_class_IoU"]) == set(CLASSES)
    # A second invocation finds the finished run and trains nothing.
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "done before" in proc.stderr
