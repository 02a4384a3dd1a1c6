"""Balance options of the contrastive term: START_ITER, FEATURE_GRAD_SCALE, GRAD_RATIO_CAP,
DETACH_ANCHORS and FEATURE_SOURCE (``contrast/balance.py``, the criterion, the segmentor)."""

import math

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from helpers import (
    FP32_RTOL,
    SMALL_HEADS_OPTS,
    assert_close_to_reference,
    demo_cfg,
    training_batch,
)

from contextrast.modeling import ContextrastCriterion
from contextrast.modeling.contrast import ContrastGradientGate, scale_gradient

C = "MODEL.CONTEXTRAST."


def test_scale_gradient_is_identity_forward_and_scales_backward():
    x = torch.randn(3, 4, requires_grad=True)
    assert scale_gradient(x, 1.0) is x
    assert not scale_gradient(x, 0.0).requires_grad
    y = scale_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.equal(x.grad, 0.25 * torch.arange(4.0).expand(3, 4))


def _two_paths(gate, iteration=0, w_ce=1.0, w_con=10.0):
    """x feeds a CE path (grad w_ce * a) and, through the gate, a contrastive path (w_con * b)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    feature = x * 1.0  # a non-leaf feature, as the backbone's outputs are
    a, b = torch.randn_like(x), torch.randn_like(x)
    head_weight = torch.ones((), requires_grad=True)
    ce = (feature * a).sum() * w_ce
    contrast = (gate("f", feature, iteration) * b * head_weight).sum() * w_con
    (ce + contrast).backward()
    return x.grad, a * w_ce, b * w_con, head_weight.grad


@pytest.mark.parametrize("cap", [0.1, 0.5, 100.0])
def test_ratio_cap_scales_the_contrastive_gradient_to_its_share(cap):
    grad, g_ce, g_con, _ = _two_paths(ContrastGradientGate(ratio_cap=cap))
    scale = min(1.0, cap * g_ce.norm().item() / g_con.norm().item())
    assert_close_to_reference(grad, g_ce + scale * g_con, rtol=FP32_RTOL)
    if cap < 100:  # the cap binds: the contrastive part is exactly cap x CE's norm
        assert (grad - g_ce).norm().item() == pytest.approx(cap * g_ce.norm().item(), rel=1e-5)


def test_ratio_cap_combines_with_the_scale_and_logs_it():
    gate = ContrastGradientGate(ratio_cap=0.1, grad_scale=0.5)
    grad, g_ce, g_con, _ = _two_paths(gate)
    scale = min(1.0, 0.1 * g_ce.norm().item() / (0.5 * g_con.norm().item()))
    assert_close_to_reference(grad, g_ce + scale * 0.5 * g_con, rtol=FP32_RTOL)
    stats = gate.stats(["f", "absent"])
    assert list(stats) == ["contrast/grad_cap_scale_f"]
    assert stats["contrast/grad_cap_scale_f"].item() == pytest.approx(scale, rel=1e-5)


def test_start_iter_detaches_the_feature_but_trains_the_head():
    gate = ContrastGradientGate(start_iter=5)
    grad, g_ce, _, head_grad = _two_paths(gate, iteration=4)
    assert torch.equal(grad, g_ce)  # no contrastive gradient reaches the network
    assert head_grad is not None and head_grad.abs() > 0  # the projection head learns
    grad, g_ce, g_con, _ = _two_paths(gate, iteration=5)
    assert_close_to_reference(grad, g_ce + g_con, rtol=FP32_RTOL)


def test_grad_scale_zero_is_a_detach_and_identity_gate_is_reported():
    grad, g_ce, _, _ = _two_paths(ContrastGradientGate(grad_scale=0.0))
    assert torch.equal(grad, g_ce)
    assert ContrastGradientGate().is_identity
    assert not ContrastGradientGate(ratio_cap=0.2).is_identity


@pytest.mark.parametrize(
    "key, kwargs",
    [
        ("FEATURE_GRAD_SCALE", {"grad_scale": -0.5}),
        ("FEATURE_GRAD_SCALE", {"grad_scale": math.nan}),
        ("GRAD_RATIO_CAP", {"ratio_cap": math.inf}),
        ("START_ITER", {"start_iter": -1}),
    ],
)
def test_gate_rejects_bad_values_naming_the_key(key, kwargs):
    with pytest.raises(ValueError, match=f"MODEL.CONTEXTRAST.{key}"):
        ContrastGradientGate(**kwargs)


def test_start_iter_moves_the_warm_up_ramp():
    cfg = demo_cfg(C + "START_ITER", "100", C + "WARMUP_ITERS", "10", C + "LOSS_WEIGHT", "0.1")
    criterion = ContextrastCriterion(cfg)
    # Before START_ITER the heads train at the full alpha (on detached features).
    assert criterion.effective_weight(50) == pytest.approx(0.1)
    assert criterion.effective_weight(100) == pytest.approx(0.01)
    assert criterion.effective_weight(104) == pytest.approx(0.05)
    assert criterion.effective_weight(500) == pytest.approx(0.1)


@pytest.mark.parametrize("key, value", [("START_ITER", "-3"), ("DETACH_ANCHORS", "1")])
def test_criterion_rejects_bad_values_naming_the_key(key, value):
    with pytest.raises(ValueError, match=f"MODEL.CONTEXTRAST.{key}"):
        ContextrastCriterion(demo_cfg(C + key, value))


def _pixels_with_gradient(detach: bool) -> int:
    """Two classes of 100 pixels; caps of 4 positives and 4 negatives per anchor."""
    cfg = demo_cfg(
        C + "IN_FEATURES", "['res5']", C + "LAYER_WEIGHTS", "[1.0]", C + "BANE.ENABLED", "False",
        C + "MAX_POSITIVES", "4", C + "MAX_NEGATIVES", "4", C + "MIN_NEGATIVES", "0",
        C + "DETACH_ANCHORS", str(detach),
    )  # fmt: skip
    criterion = ContextrastCriterion(cfg)
    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(1, 16, 10, 20), dim=1).requires_grad_()
    labels = torch.zeros(1, 10, 20, dtype=torch.long)
    labels[..., 10:] = 1
    logits = torch.randn(1, 8, 10, 20)
    losses, _ = criterion({"res5": emb}, logits, labels)
    losses["loss_contrast"].backward()
    return int((emb.grad.abs().sum(1) > 0).sum())


def test_detached_anchors_send_gradient_to_the_sampled_pixels_only():
    assert _pixels_with_gradient(detach=False) == 200  # every pixel, through its class mean
    assert 0 < _pixels_with_gradient(detach=True) <= 2 * (4 + 4)


HEAD_OPTS = [C + "FEATURE_SOURCE", "head", C + "IN_FEATURES", "['aspp']", C + "LAYER_WEIGHTS",
             "[1.0]"]  # fmt: skip


def test_head_features_feed_the_projection_heads_and_leave_inference_alone():
    torch.manual_seed(0)
    model = build_model(demo_cfg(*SMALL_HEADS_OPTS, *HEAD_OPTS))
    torch.manual_seed(0)
    baseline = build_model(demo_cfg(*SMALL_HEADS_OPTS, C + "ENABLED", "False"))
    channels = model.sem_seg_head.contrast_feature_shapes()["aspp"].channels
    assert list(model.contrast_heads) == ["aspp"]
    assert model.contrast_heads["aspp"].proj[0].in_channels == channels
    model.train()
    with EventStorage(0):
        losses = model(training_batch())
        losses["loss_contrast"].backward()
    # Through the ASPP output, the contrastive gradient reaches the head's ASPP and the backbone.
    assert model.sem_seg_head.aspp.convs[0].weight.grad.abs().sum() > 0
    assert model.backbone.stem.conv1.weight.grad.abs().sum() > 0
    # Inference is the baseline's network: same weights give the same logits.
    inference = {k: v for k, v in model.state_dict().items() if not k.startswith("contrast_")}
    baseline.load_state_dict(inference)
    x = torch.rand(1, 3, 64, 64) * 255
    model.eval(), baseline.eval()
    assert torch.equal(model.forward_logits(x), baseline.forward_logits(x))


def test_deeplabv3plus_exposes_aspp_and_decoder_features():
    cfg = demo_cfg(
        *SMALL_HEADS_OPTS,
        "MODEL.SEM_SEG_HEAD.NAME", "SplitDeepLabV3PlusHead",
        "MODEL.SEM_SEG_HEAD.IN_FEATURES", "['res2', 'res5']",
        "MODEL.SEM_SEG_HEAD.PROJECT_FEATURES", "['res2']",
        "MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS", "[16]",
        "MODEL.SEM_SEG_HEAD.COMMON_STRIDE", "4",
        C + "FEATURE_SOURCE", "head",
        C + "IN_FEATURES", "['aspp', 'decoder']",
        C + "LAYER_WEIGHTS", "[0.4, 1.0]",
    )  # fmt: skip
    model = build_model(cfg).train()
    shapes = model.sem_seg_head.contrast_feature_shapes()
    assert list(shapes) == ["aspp", "decoder"] and shapes["decoder"].stride == 4
    features = model.backbone(torch.rand(1, 3, 64, 64))
    outputs = model.sem_seg_head.layers(features)
    for name, shape in shapes.items():
        assert outputs[name].shape[1] == shape.channels
        assert outputs[name].shape[-1] == 64 // shape.stride
    with EventStorage(0):
        assert torch.isfinite(model(training_batch())["loss_contrast"])


@pytest.mark.parametrize(
    "opts, message",
    [
        ([C + "FEATURE_SOURCE", "decoder"], "FEATURE_SOURCE"),
        ([C + "FEATURE_SOURCE", "head"], r"\['res2', 'res3', 'res4', 'res5'\]: .* not produced"),
        (
            [C + "FEATURE_SOURCE", "head", C + "IN_FEATURES", "['aspp', 'aspp2']",
             C + "LAYER_WEIGHTS", "[1.0, 1.0]"],  # fmt: skip
            "aspp2",
        ),
    ],
)
def test_bad_feature_source_settings_name_the_key(opts, message):
    with pytest.raises(ValueError, match=message):
        build_model(demo_cfg(*SMALL_HEADS_OPTS, *opts))
