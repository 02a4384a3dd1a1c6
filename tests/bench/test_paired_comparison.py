"""bench/paired_comparison.py: the decision table of a study (paired t-interval, sign-flip test,
per-class deltas, curves, gain vs the gradient diagnostic) from result files."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

SCRIPT = os.path.join(ROOT, "bench", "paired_comparison.py")
CLASSES = ("Sky", "Pole", "SignSymbol", "Bicyclist", "Road")


@pytest.fixture(scope="module")
def pc():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    spec = importlib.util.spec_from_file_location("bench_paired_comparison", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_t_interval_and_sign_flip_p(pc):
    # mean 2, sample std 1, n 3: half-width t(0.975, 2) * 1 / sqrt(3), t = 4.3027.
    low, high = pc.t_interval([1.0, 2.0, 3.0])
    assert low == pytest.approx(2 - 4.302653 / 3**0.5, abs=1e-5)
    assert high == pytest.approx(2 + 4.302653 / 3**0.5, abs=1e-5)
    # Five differences of one sign: only the all-plus and all-minus flips reach |sum|.
    assert pc.sign_flip_p([1.0, 2.0, 0.5, 3.0, 1.5]) == 2 / 32
    assert pc.sign_flip_p([1.0, -1.0]) == 1.0
    assert pc.decision(0.1, 2.0, 5, 5) == "better than CE only"
    assert pc.decision(-3.0, -0.1, 5, 5) == "worse than CE only"
    assert pc.decision(-0.1, 2.0, 5, 5) == "not separable from CE only"
    # The rule decides on the planned pairs only, whatever the interval of fewer says.
    assert pc.decision(-0.74, -0.44, 2, 5) == "pending: 2 of 5 pairs"


def _run_result(seed, miou, thin, curve=True):
    per_class = {c: miou for c in CLASSES}
    per_class.update(Pole=thin, SignSymbol=thin / 2, Bicyclist=0.0)
    result = {"seed": seed, "mIoU": miou, "per_class_IoU": per_class, "wall_s": 600.0,
              "step_time_s": 1.0, "machine": {"cpu": "test cpu", "simd": "AVX2"}}  # fmt: skip
    if curve:
        result["eval_curve"] = {"iteration": [99, 199], "mIoU": [miou - 5, miou]}
    return result


def test_table_pairs_by_seed_orders_thin_classes_first_and_plots(tmp_path):
    base, head = tmp_path / "long", tmp_path / "long_head"
    base.mkdir(), head.mkdir()
    for seed, (ce, h) in enumerate([(50.0, 52.0), (51.0, 52.5), (49.0, 51.5)]):
        (base / f"ce_seed{seed}.json").write_text(json.dumps(_run_result(seed, ce, 10.0)))
        (head / f"ccl_bane_seed{seed}.json").write_text(json.dumps(_run_result(seed, h, 14.0)))
    # Seed 2 of the head recipe finished in a second process: its wall time is that part only.
    resumed = dict(_run_result(2, 51.5, 14.0), resumed=True)
    (head / "ccl_bane_seed2.json").write_text(json.dumps(resumed))
    out = tmp_path / "report" / "table.md"
    cmd = [sys.executable, SCRIPT, "--seeds", "0", "1", "2", "--baseline", f"CE only={base}:ce",
           "--compare", f"head={head}:ccl_bane", "--output", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    # Differences +2.0, +1.5, +2.5: mean 2.00, std 0.50, all three above, p = 2/8.
    row = next(line for line in text.splitlines() if line.startswith("| head |"))
    assert "+2.00, +1.50, +2.50" in row and "+2.00 +- 0.50" in row and "3/3" in row
    assert "0.250" in row and "better than CE only" in row
    rows = [line.split("|") for line in text.splitlines() if line.startswith("| ")]
    classes = [r[1].strip() for r in rows if r[1].strip() in CLASSES]
    thin = [c for c in classes if c in ("Pole", "SignSymbol", "Bicyclist")]
    assert thin == ["Pole", "SignSymbol", "Bicyclist"]
    assert classes.index("Pole") < classes.index("Sky")
    assert "| Pole | 10.0 +- 0.0 | 14.0 +- 0.0 | +4.0 +- 0.0 (3/3) |" in text
    assert "| CE only | 2 | test cpu (AVX2) | 10 | 1.00 |" in text
    assert "| head | 2 | test cpu (AVX2) | 10 (resumed: last part only) | 1.00 |" in text
    assert (tmp_path / "report" / "table_curves.png").stat().st_size > 0
    # Five seeds planned, three trained: the interval is shown, the rule's verdict is not.
    cmd[cmd.index("--seeds") + 1 : cmd.index("--baseline")] = ["0", "1", "2", "3", "4"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(line for line in out.read_text().splitlines() if line.startswith("| head |"))
    assert "+2.00 +- 0.50" in row and "pending: 3 of 5 pairs" in row
    assert "better than" not in row


def test_gain_vs_cosine_reads_the_screen_cell(tmp_path, pc):
    base, variant = tmp_path / "s", tmp_path / "s_v"
    base.mkdir(), variant.mkdir()
    for seed in (0, 1):
        (base / f"ce_seed{seed}.json").write_text(json.dumps(_run_result(seed, 50.0, 1.0)))
        (variant / f"ccl_bane_seed{seed}.json").write_text(
            json.dumps(_run_result(seed, 49.0 - seed, 1.0))
        )
    screen = tmp_path / "screen.json"
    row = {"group": "backbone", "ratio": 1.5, "cosine": 0.04}
    screen.write_text(json.dumps({"cells": [{"variant": "v", "weights_name": "it200",
                                             "rows": [row]}]}))  # fmt: skip
    spec = f"v={variant}:ccl_bane@{screen}#v/it200"
    (point,) = pc.gain_points([spec], [0, 1], f"ce={base}:ce")
    assert point["gain"] == pytest.approx(-1.5) and point["pairs"] == 2
    assert point["cosine"] == 0.04 and point["ratio"] == 1.5
    with pytest.raises(ValueError, match="no cell v/it600"):
        pc.gain_points([spec.replace("it200", "it600")], [0, 1], f"ce={base}:ce")
