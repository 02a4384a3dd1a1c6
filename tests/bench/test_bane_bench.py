"""Smoke test of bench/bane.py with tiny maps (timings are not checked, exactness is)."""

import json
import os
import subprocess
import sys

from helpers import ROOT

CONTRAST = os.path.join(ROOT, "projects", "Contextrast", "contextrast", "modeling", "contrast")


def test_bane_bench_tiny(tmp_path):
    out = tmp_path / "bane.json"
    cmd = [
        sys.executable, os.path.join(ROOT, "bench", "bane.py"), "--batch", "2", "--classes", "5",
        "--size", "32", "48", "--rounds", "1", "--threads", "1", "--step-warmup", "1",
        "--step-rounds", "1", "--json", str(out),
        "--baseline-edt", os.path.join(ROOT, "bench", "binary_edt.py"),
        "--baseline-bane", os.path.join(CONTRAST, "bane.py"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for kind in ("realistic", "dense"):
        timing = result["edt"][kind]["timing"]  # each implementation was checked against scipy
        assert {"scipy", "edt (1 thr)", "baseline_edt (1 thr)"} <= set(timing)
    # The label-map transform (what BANE runs) applies to the disjoint realistic maps only.
    assert "edt (label map) (1 thr)" in result["edt"]["realistic"]["timing"]
    assert result["edt"]["realistic"]["nonempty_maps"] > 0
    assert {"select (1 thr)", "baseline select (1 thr)"} == set(result["selection"])
    share = result["step_share"]
    assert share["layers"] and set(share["by_impl"]) == {"bane", "baseline_bane"}
    assert all(0 < e["bane_share_median"] < 1 for e in share["by_impl"].values())
