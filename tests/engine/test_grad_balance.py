"""The gradient-balance diagnostic (``contextrast.engine.grad_balance``, ``tools/grad_balance.py``)
against direct ``torch.autograd.grad`` on the tiny demo model, and its messages."""

import subprocess
import sys

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from helpers import (
    BASELINE_CONFIG,
    DEMO_CONFIG,
    FP32_RTOL,
    SMALL_HEADS_OPTS,
    demo_cfg,
    subprocess_env,
    tool,
    training_batch,
)

from contextrast.config import load_config
from contextrast.engine.grad_balance import (
    format_table,
    gradient_balance,
    measure_config,
    parameter_groups,
)

C = "MODEL.CONTEXTRAST."


def _direct(model, batch, params, seed):
    """Norms and cosine of d loss_sem_seg / d params and d loss_contrast / d params."""
    torch.manual_seed(seed)  # the same dropout masks and contrastive samples as the diagnostic
    with EventStorage(0):
        losses = model(batch)
    g_ce = torch.autograd.grad(losses["loss_sem_seg"], params, retain_graph=True)
    g_con = torch.autograd.grad(losses["loss_contrast"], params, allow_unused=True)
    a = torch.cat([g.flatten().double() for g in g_ce])
    g_con = [torch.zeros_like(p) if g is None else g for g, p in zip(g_con, params)]
    b = torch.cat([g.flatten().double() for g in g_con])
    return a.norm().item(), b.norm().item(), (a @ b).item() / (a.norm() * b.norm()).item()


def test_groups_cover_the_shared_parameters_once():
    torch.manual_seed(0)
    model = build_model(demo_cfg(*SMALL_HEADS_OPTS))
    groups = parameter_groups(model)
    stages = [g for g in groups if g.startswith("backbone.")]
    assert len(stages) >= 4  # stem + res2..res5 of the demo ResNet
    ids = [id(p) for g in stages for p in groups[g]]
    assert len(ids) == len(set(ids)) == sum(1 for _ in model.backbone.parameters())
    assert {id(p) for p in groups["shared"]} == set(ids) | {
        id(p) for p in model.sem_seg_head.parameters()
    }
    assert not any(name.startswith("contrast_heads") for name in groups)


def test_diagnostic_matches_direct_autograd_grad():
    torch.manual_seed(0)
    model = build_model(demo_cfg(*SMALL_HEADS_OPTS))
    batch = training_batch()
    torch.manual_seed(5)
    rows = {r.group: r for r in gradient_balance(model, [batch])}
    for group in ("shared", "backbone", "backbone.stem"):
        params = parameter_groups(model)[group]
        ce, con, cos = _direct(model, batch, params, seed=5)
        row = rows[group]
        assert row.ce_norm == pytest.approx(ce, rel=FP32_RTOL)
        assert row.contrast_norm == pytest.approx(con, rel=FP32_RTOL)
        assert row.ratio == pytest.approx(con / ce, rel=FP32_RTOL)
        assert row.cosine == pytest.approx(cos, rel=1e-3, abs=1e-4)
    assert rows["sem_seg_head"].contrast_norm == 0  # backbone-stage heads never reach the head
    assert "| shared |" in format_table(list(rows.values()))


def test_diagnostic_measures_what_the_gate_lets_through():
    torch.manual_seed(0)
    capped = build_model(demo_cfg(*SMALL_HEADS_OPTS, C + "GRAD_RATIO_CAP", "0.05"))
    rows = {r.group: r for r in gradient_balance(capped, [training_batch()])}
    torch.manual_seed(0)
    plain = build_model(demo_cfg(*SMALL_HEADS_OPTS))
    plain_rows = {r.group: r for r in gradient_balance(plain, [training_batch()])}
    assert rows["backbone"].ratio < plain_rows["backbone"].ratio
    assert rows["backbone.res5"].ratio < 0.2  # capped at 0.05 at res5's output, then propagated


def test_diagnostic_refuses_a_model_without_contrast():
    model = build_model(demo_cfg(*SMALL_HEADS_OPTS, C + "ENABLED", "False"))
    with pytest.raises(ValueError, match="ENABLED is False"):
        gradient_balance(model, [training_batch()])


def _run_tool(*args):
    cmd = [sys.executable, tool("tools", "grad_balance.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=300)


def test_tool_names_the_problem_instead_of_a_trace(tmp_path):
    proc = _run_tool("--config-file", BASELINE_CONFIG)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "MODEL.CONTEXTRAST.ENABLED" in proc.stderr and "baseline.yaml" in proc.stderr

    wrong = tmp_path / "other.pth"  # a checkpoint of another class count
    model = build_model(demo_cfg("MODEL.SEM_SEG_HEAD.NUM_CLASSES", "3", C + "ENABLED", "False"))
    torch.save({"model": model.state_dict()}, wrong)
    proc = _run_tool("--config-file", DEMO_CONFIG, "--weights", str(wrong))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "predictor" in proc.stderr and str(wrong) in proc.stderr


def _demo_checkpoint(path, iteration: int) -> str:
    """A demo-model checkpoint as training writes it after finishing ``iteration``."""
    torch.manual_seed(0)
    model = build_model(demo_cfg(*SMALL_HEADS_OPTS))
    torch.save({"model": model.state_dict(), "iteration": iteration}, path)
    return str(path)


def test_measures_at_the_iteration_training_runs_next(tmp_path):
    """A checkpoint's iteration is the last one it finished; a resumed run continues at the next:
    alpha's ramp and the gate's are taken there (WARMUP_ITERS 10, START_ITER 5)."""
    weights = _demo_checkpoint(tmp_path / "model_0000004.pth", iteration=4)
    opts = [*SMALL_HEADS_OPTS, C + "WARMUP_ITERS", "10", C + "START_ITER", "5"]
    cfg = load_config(DEMO_CONFIG, opts, weights=weights)
    rows, setting = measure_config(cfg, num_batches=1)
    assert setting.iteration == 5
    assert setting.alpha == pytest.approx(0.1 * 6 / 10)  # LOSS_WEIGHT 0.1, ramped from 0
    assert setting.grad_scale == pytest.approx(1 / 10)  # the gate opens at START_ITER 5
    assert "iteration 5 (alpha 0.06, gradient into the network x 0.1)" in setting.describe()
    assert {r.group: r for r in rows}["shared"].contrast_norm > 0


def test_before_start_iter_the_header_says_why_the_rows_are_zero():
    cfg = load_config(DEMO_CONFIG, [*SMALL_HEADS_OPTS, C + "START_ITER", "1000"])
    rows, setting = measure_config(cfg, num_batches=1)
    assert setting.iteration == 0 and setting.grad_scale == 0
    assert all(r.contrast_norm == 0 for r in rows)
    assert "before MODEL.CONTEXTRAST.START_ITER = 1000: no contrastive gradient" in (
        setting.describe()
    )
    with pytest.raises(ValueError, match="iteration = -5: expected a training iteration >= 0"):
        measure_config(cfg, num_batches=1, iteration=-5)


def test_tool_names_missing_and_unreadable_checkpoints(tmp_path):
    proc = _run_tool("--config-file", DEMO_CONFIG, "--iteration", "-5")
    assert proc.returncode == 2 and "--iteration: -5: expected a training iteration >= 0" in (
        proc.stderr
    )
    messages = {}
    for name, content in (("missing.pth", None), ("empty.pth", b"")):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        proc = _run_tool("--config-file", DEMO_CONFIG, "--weights", str(path))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        messages[name] = proc.stderr
    assert f"Checkpoint {tmp_path / 'missing.pth'} not found" in messages["missing.pth"]
    assert f"Cannot read checkpoint {tmp_path / 'empty.pth'} (the file is empty)" in (
        messages["empty.pth"]
    )
