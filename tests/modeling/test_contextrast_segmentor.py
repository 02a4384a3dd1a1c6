"""ContextrastSegmentor: gradients, the training/eval split, edge cases, AMP dtype."""

import pytest
import torch
import torch.nn.functional as F
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

IGNORE = 255


def _batch(n=2, h=67, w=83, num_classes=8, seed=0):
    return training_batch(n, h, w, num_classes, seed)  # sizes that are not multiples of 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(43)
    return build_model(demo_cfg(*SMALL_HEADS_OPTS))


def test_training_losses_and_gradients_reach_heads_and_backbone(model):
    model.train()
    model.zero_grad()
    with EventStorage(0) as storage:
        losses = model(_batch())
        assert set(losses) == {"loss_sem_seg", "loss_contrast"}
        sum(losses.values()).backward()
        logged = storage.latest()
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_contrast"] > 0
    for name, p in model.named_parameters():
        if name.startswith("contrast_heads.") and "norm" not in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    stem = model.backbone.stem.conv1.weight.grad
    assert stem is not None and stem.abs().sum() > 0
    assert "contrast/loss_res2" in logged and "contrast/bane_negatives_res5" in logged


def test_contrastive_gradient_alone_reaches_backbone(model):
    model.train()
    model.zero_grad()
    with EventStorage(0):
        model(_batch(seed=1))["loss_contrast"].backward()
    assert model.backbone.res2[0].conv1.weight.grad.abs().sum() > 0
    assert model.sem_seg_head.predictor.weight.grad is None  # CE-only parameters untouched


def test_eval_never_calls_training_only_modules(model):
    model.eval()
    calls = []
    hooks = [
        m.register_forward_hook(lambda *a: calls.append(1)) for m in model.contrast_heads.modules()
    ]
    criterion, model.criterion = model.criterion, None  # any call would raise TypeError
    try:
        with torch.no_grad():
            out = model([{"image": torch.rand(3, 61, 77) * 255, "height": 30, "width": 40}])
            logits = model.forward_logits(torch.rand(1, 3, 61, 77) * 255)
    finally:
        model.criterion = criterion
        for h in hooks:
            h.remove()
    assert calls == []
    assert out[0]["sem_seg"].shape == (8, 30, 40)
    assert logits.shape == (1, 8, 61, 77)


def test_forward_logits_equals_eval_forward(model):
    model.eval()
    image = torch.rand(3, 70, 90) * 255
    with torch.no_grad():
        a = model([{"image": image}])[0]["sem_seg"]
        b = model.forward_logits(image[None])[0]
    # Logits of a fresh network are ~1e-2: an absolute 1e-4 would allow 1% differences.
    assert_close_to_reference(a, b, rtol=FP32_RTOL)


def test_baseline_has_no_training_only_modules():
    base = build_model(demo_cfg(*SMALL_HEADS_OPTS, "MODEL.CONTEXTRAST.ENABLED", "False"))
    full = build_model(demo_cfg(*SMALL_HEADS_OPTS))
    assert base.contrast_heads is None and base.criterion is None
    assert not any(k.startswith("contrast_heads.") for k in base.state_dict())
    inference_keys = {k for k in full.state_dict() if not k.startswith("contrast_heads.")}
    assert inference_keys == set(base.state_dict())


def _criterion(*opts):
    return ContextrastCriterion(demo_cfg(*SMALL_HEADS_OPTS, *opts))


def _embeddings(b, sizes, d=16, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    names = ["res2", "res3", "res4", "res5"]
    return {
        n: F.normalize(torch.randn(b, d, *s, generator=g), dim=1).requires_grad_(requires_grad)
        for n, s in zip(names, sizes)
    }


SIZES = [(16, 16), (8, 8), (4, 4), (4, 4)]


def test_absent_classes_and_ignore_only_images():
    crit = _criterion()
    targets = torch.full((2, 64, 64), IGNORE)
    targets[0, :32] = 1
    targets[0, 32:] = 3  # image 1 has only ignore pixels; most classes absent
    emb = _embeddings(2, SIZES)
    logits = torch.randn(2, 8, 16, 16)
    with EventStorage(0):
        losses, stats = crit(emb, logits, targets)
    loss = losses["loss_contrast"]
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert all(torch.isfinite(e.grad).all() for e in emb.values())


def test_all_ignore_training_batch_has_finite_losses(model):
    model.train()
    batch = _batch()
    for x in batch:
        x["sem_seg"][:] = IGNORE
    with EventStorage(0):
        losses = model(batch)
    assert all(torch.isfinite(v) and v.item() == 0.0 for v in losses.values())
    sum(losses.values()).backward()


def test_all_ignore_batch_is_connected_zero():
    crit = _criterion()
    targets = torch.full((2, 64, 64), IGNORE)
    emb = _embeddings(2, SIZES)
    losses, stats = crit(emb, torch.randn(2, 8, 16, 16), targets)
    assert losses["loss_contrast"].item() == 0.0
    losses["loss_contrast"].backward()
    assert all(e.grad is not None and torch.all(e.grad == 0) for e in emb.values())


def test_no_mispredictions_falls_back_to_random_negatives():
    crit = _criterion()
    g = torch.Generator().manual_seed(5)
    coarse = torch.randint(0, 4, (2, 1, 4, 4), generator=g).float()
    targets = F.interpolate(coarse, size=(64, 64), mode="nearest")[:, 0].long()
    perfect = F.one_hot(targets, 8).permute(0, 3, 1, 2).float() * 10  # argmax == targets
    emb = _embeddings(2, SIZES)
    losses, stats = crit(emb, perfect, targets)
    assert all(stats[f"contrast/bane_negatives_{n}"] == 0 for n in ["res2", "res5"])
    assert losses["loss_contrast"] > 0  # random other-class negatives (MIN_NEGATIVES top-up)


def test_contrastive_math_stays_float32_under_autocast():
    crit = _criterion()
    targets = torch.randint(0, 8, (2, 64, 64))
    emb = {k: v.detach().bfloat16() for k, v in _embeddings(2, SIZES).items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses, _ = crit(emb, torch.randn(2, 8, 16, 16).bfloat16(), targets)
    assert losses["loss_contrast"].dtype == torch.float32


def test_warmup_ramps_alpha():
    crit = _criterion("MODEL.CONTEXTRAST.WARMUP_ITERS", "10")
    assert crit.effective_weight(0) == pytest.approx(0.01)
    assert crit.effective_weight(4) == pytest.approx(0.05)
    assert crit.effective_weight(100) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("MODEL.CONTEXTRAST.TEMPERATURE", "-0.1", "TEMPERATURE"),
        ("MODEL.CONTEXTRAST.BANE.TOP_K_RATIO", "1.5", "TOP_K_RATIO"),
        ("MODEL.CONTEXTRAST.LAYER_WEIGHTS", "[1.0, 0.5]", "LAYER_WEIGHTS"),
        ("MODEL.CONTEXTRAST.BANE.ERROR_MAP", "'both'", "ERROR_MAP"),
        ("MODEL.CONTEXTRAST.IN_FEATURES", "['res2', 'res3', 'res4', 'res6']", "res6"),
    ],
)
def test_invalid_values_are_refused_before_training(key, value, match):
    with pytest.raises(ValueError, match=match):
        build_model(demo_cfg(*SMALL_HEADS_OPTS, key, value))
