"""Smoke test of bench/train_step.py with a tiny batch (the numbers themselves are not checked)."""

import importlib.util
import json
import os
import subprocess
import sys

import torch
from helpers import ROOT

SCRIPT = os.path.join(ROOT, "bench", "train_step.py")


def test_train_step_runs_all_variants_and_writes_json(tmp_path):
    out = tmp_path / "step.json"
    cmd = [
        sys.executable, SCRIPT, "--preset", "demo", "--batch", "2", "--size", "64", "64",
        "--warmup", "1", "--rounds", "2", "--threads", "1", "--no-memory", "--json", str(out),
        "--baseline-loss", os.path.join(ROOT, "projects", "Contextrast", "contextrast", "modeling",
                                        "contrast", "loss.py"),
        "MODEL.CONTEXTRAST.PROJ_DIM", "16",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["variants"]) == ["ce", "ccl", "ccl_bane", "ccl_bane_baseline_loss"]
    assert result["batch"] == 2 and result["size"] == [64, 64]
    for v in result["variants"].values():
        assert len(v["times_ms"]) == 2 and v["median_ms"] > 0
    assert result["ratio_base"] == "ce" and result["variants"]["ce"]["time_ratio"] == 1.0
    assert "CE + CCL + BANE" in proc.stdout


def test_train_step_times_recipes_from_their_own_configs(tmp_path):
    """--configs: each variant is built from its own file (here the demo network with and
    without Contextrast), ratios are to the first, and the overrides after ``--`` reach all."""
    out = tmp_path / "recipes.json"
    cmd = [
        sys.executable, SCRIPT, "--preset", "demo", "--batch", "2", "--size", "64", "64",
        "--warmup", "1", "--rounds", "2", "--threads", "1", "--no-memory", "--json", str(out),
        "--configs", "base=configs/demo/baseline.yaml", "ctr=configs/demo/contextrast.yaml",
        "--", "MODEL.CONTEXTRAST.PROJ_DIM", "16",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert list(result["variants"]) == ["base", "ctr"] and result["ratio_base"] == "base"
    assert result["configs"]["ctr"] == "configs/demo/contextrast.yaml"
    assert result["opts"] == ["MODEL.CONTEXTRAST.PROJ_DIM", "16"]
    assert result["variants"]["base"]["time_ratio"] == 1.0
    assert result["variants"]["ctr"]["time_ratio"] > 0


def test_train_step_refuses_a_recipe_without_a_config_file():
    cmd = [sys.executable, SCRIPT, "--configs", "x=configs/nope.yaml"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no config file configs/nope.yaml" in proc.stderr


def test_cpu_memory_child_reports_peak_and_state(capsys):
    """The per-variant memory process, called in this process (its numbers are not checked)."""
    spec = importlib.util.spec_from_file_location("bench_train_step", SCRIPT)
    train_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_step)
    threads = torch.get_num_threads()
    try:
        train_step.main(
            ["--preset", "demo", "--batch", "2", "--size", "64", "64", "--threads", "1",
             "--memory-child", "ccl_bane", "MODEL.CONTEXTRAST.PROJ_DIM", "16"]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    mem = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert mem["state_bytes"] > 0 and "peak_delta_bytes" in mem
