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

from contextrast.checkpoint import TRAINING_ONLY_PREFIX as TRAINING_ONLY
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


def test_start_iter_ramps_the_gradient_into_the_network_not_alpha():
    """alpha ramps from iteration 0 and START_ITER does not reset it; the gate's multiplier is 0
    before START_ITER and ramps over WARMUP_ITERS from it (checked on the gradient itself)."""
    start, warmup = 4, 10
    cfg = demo_cfg(C + "START_ITER", str(start), C + "WARMUP_ITERS", str(warmup),
                   C + "LOSS_WEIGHT", "0.1", C + "FEATURE_GRAD_SCALE", "0.5")  # fmt: skip
    criterion, gate = ContextrastCriterion(cfg), ContrastGradientGate(cfg)
    half = start + warmup // 2
    expected = {  # iteration: (alpha, multiplier of the heads' gradient into the network)
        start - 1: (0.1 * start / warmup, 0.0),
        start: (0.1 * (start + 1) / warmup, 0.5 * 1 / warmup),
        half: (0.1 * min(1.0, (half + 1) / warmup), 0.5 * (warmup // 2 + 1) / warmup),
        start + warmup - 1: (0.1, 0.5),
    }
    for iteration, (alpha, scale) in expected.items():
        assert criterion.effective_weight(iteration) == pytest.approx(alpha), iteration
        grad, g_ce, g_con, head_grad = _two_paths(gate, iteration=iteration)
        assert head_grad is not None and head_grad.abs() > 0  # the heads learn throughout
        if scale == 0:
            assert torch.equal(grad, g_ce), iteration
        else:
            assert_close_to_reference(
                grad, g_ce + scale * g_con, rtol=FP32_RTOL, what=str(iteration)
            )
    # With START_ITER 0 the ramp of alpha already starts the network's gradient from 0: no
    # second ramp in the gate.
    gate = ContrastGradientGate(warmup_iters=warmup)  # START_ITER 0
    assert gate.is_identity and gate.scale_at(0) == 1.0


def _criterion_kwargs(**changes):
    """The demo config's criterion arguments, with ``changes``, bypassing the config (and yacs'
    type checks): what a caller that builds the criterion itself passes."""
    kwargs = ContextrastCriterion.from_config(demo_cfg())
    kwargs.update(changes)
    return kwargs


@pytest.mark.parametrize(
    "key, changes",
    [
        ("WARMUP_ITERS", {"warmup_iters": -3}),
        ("DETACH_ANCHORS", {"detach_anchors": 1}),
        ("DETACH_ANCHORS", {"detach_anchors": "1"}),
        ("LAYER_WEIGHTS", {"layer_weights": [0.1, 0.4, math.nan, 1.0]}),
        ("TEMPERATURE", {"temperature": math.inf}),
        ("BANE.TIE_BREAK", {"bane_tie_break": "left"}),
    ],
)
def test_criterion_rejects_bad_values_naming_the_key(key, changes):
    with pytest.raises(ValueError, match=f"MODEL.CONTEXTRAST.{key} = "):
        ContextrastCriterion(**_criterion_kwargs(**changes))


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
    # Inference is the baseline's network: on the same weights, the export entry point of the
    # model with projection heads gives what the baseline's eval-mode forward() gives.
    state = model.state_dict()
    baseline.load_state_dict({k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY)})
    x = torch.rand(2, 3, 50, 70) * 255  # not a multiple of the stride: both pad and crop back
    model.eval(), baseline.eval()
    with torch.no_grad():
        logits = model.forward_logits(x)
        reference = torch.stack([r["sem_seg"] for r in baseline([{"image": im} for im in x])])
    assert_close_to_reference(logits, reference, rtol=FP32_RTOL, what="logits")


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


def _contrast_gradients(model, iteration: int):
    """loss_contrast of the demo batch at a training iteration, and whether its gradient reaches
    the backbone and the projection heads."""
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks and samples at every iteration
    with EventStorage(iteration):
        loss = model(training_batch())["loss_contrast"]
    loss.backward()

    def reached(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    return loss.item(), reached(model.backbone), reached(model.contrast_heads)


def test_segmentor_gives_the_gate_and_alpha_the_training_iteration():
    torch.manual_seed(0)
    model = build_model(
        demo_cfg(*SMALL_HEADS_OPTS, C + "START_ITER", "1", C + "WARMUP_ITERS", "10")
    ).train()
    loss0, backbone0, heads0 = _contrast_gradients(model, 0)
    loss5, backbone5, heads5 = _contrast_gradients(model, 5)
    assert heads0 and heads5
    assert not backbone0 and backbone5  # the gate opens at START_ITER 1
    assert loss5 / loss0 == pytest.approx(6.0, rel=1e-5)  # alpha (5 + 1) / 10 vs (0 + 1) / 10


def test_cap_scales_reach_the_event_storage():
    torch.manual_seed(0)
    cfg = demo_cfg(*SMALL_HEADS_OPTS, C + "GRAD_RATIO_CAP", "0.01", "SOLVER.LOG_PERIOD", "1")
    model = build_model(cfg).train()
    with EventStorage(0) as storage:
        sum(model(training_batch()).values()).backward()
        storage.step()
        model(training_batch())  # logs the scales of the previous backward pass
        logged = {k: v for k, (v, _) in storage.latest().items() if "grad_cap_scale" in k}
    applied = model.gradient_gate.last_cap_scales
    assert list(logged) == [
        f"contrast/grad_cap_scale_{n}" for n in ("res2", "res3", "res4", "res5")
    ]
    for name, value in logged.items():
        assert value == pytest.approx(applied[name.rsplit("_", 1)[-1]].item())
        assert 0 < value <= 1
    assert min(logged.values()) < 1  # the cap bound somewhere
