"""The switches of the cheaper CPU training step (configs/camvid/study/lite0_fast_ccl_bane.yaml)
change the cost, not the network: MODEL.BACKBONE.FREEZE_AT for EfficientNet-Lite,
MODEL.CHANNELS_LAST, and the projection head's matrix-product form."""

import os

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_backbone, build_model
from detectron2.utils.events import EventStorage
from helpers import (
    CONFIGS_DIR,
    FP32_RTOL,
    assert_close_to_reference,
    demo_cfg,
    training_batch,
)

from contextrast.modeling.contrast import ConvMLPProjectionHead

LITE0 = os.path.join(CONFIGS_DIR, "camvid", "lite0_deeplabv3plus_contextrast.yaml")
FAST = os.path.join(CONFIGS_DIR, "camvid", "study", "lite0_fast_ccl_bane.yaml")


def lite0_cfg(*opts, config=LITE0):
    return demo_cfg("MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *opts, config=config)


def _frozen_blocks(backbone):
    body = backbone.body
    frozen = {n.split(".")[0] for n, p in body.named_parameters() if not p.requires_grad}
    blocks = {int(n.split(".")[1]) for n, p in body.named_parameters()
              if n.startswith("blocks.") and not p.requires_grad}  # fmt: skip
    return frozen, blocks


@pytest.mark.parametrize(
    "freeze_at, stem_frozen, frozen_blocks",
    [(0, False, set()), (1, True, {0}), (2, True, {0, 1}), (3, True, {0, 1, 2})],
)
def test_freeze_at_freezes_the_stem_and_the_stages_up_to_res_k(
    freeze_at, stem_frozen, frozen_blocks
):
    backbone = build_backbone(lite0_cfg("MODEL.BACKBONE.FREEZE_AT", str(freeze_at)))
    frozen, blocks = _frozen_blocks(backbone)
    assert ("conv_stem" in frozen) == stem_frozen  # bn1 is frozen BN either way: no parameters
    assert blocks == frozen_blocks
    # A frozen parameter gets no gradient; the first trainable block does.
    x = torch.randn(1, 3, 64, 64)
    sum(f.sum() for f in backbone(x).values()).backward()
    for name, p in backbone.body.named_parameters():
        assert (p.grad is None) == (not p.requires_grad), name


def test_lite0_configs_train_every_stage_unless_told_otherwise():
    """detectron2 defaults FREEZE_AT to 2; the lite0 configs trained everything before the key
    reached this backbone and keep doing so."""
    for path in (LITE0, os.path.join(CONFIGS_DIR, "camvid", "study", "lite0_ccl_bane.yaml")):
        backbone = build_backbone(lite0_cfg(config=path))
        assert all(p.requires_grad for p in backbone.parameters()), path
    frozen, blocks = _frozen_blocks(build_backbone(lite0_cfg(config=FAST)))
    assert "conv_stem" in frozen and blocks == {0, 1}


def test_freeze_at_out_of_range_names_the_key():
    with pytest.raises(ValueError, match="MODEL.BACKBONE.FREEZE_AT = 6"):
        build_backbone(lite0_cfg("MODEL.BACKBONE.FREEZE_AT", "6"))


def test_channels_last_gives_the_same_losses_gradients_and_logits():
    """Same weights, same batch: channels-last memory format changes the layout only. In float64,
    so that the comparison sees the arithmetic and not float32 rounding (at initialisation the
    backbone's gradients are tiny differences of large sums: another summation order moves them
    by percents in float32). ASPP dropout off: its mask follows the memory order."""
    opts = ["MODEL.CONTEXTRAST.PROJ_DIM", "16", "MODEL.SEM_SEG_HEAD.ASPP_DROPOUT", "0.0"]
    torch.manual_seed(0)
    a = build_model(demo_cfg(*opts)).train().double()
    b = build_model(demo_cfg(*opts, "MODEL.CHANNELS_LAST", "True")).train().double()
    b.load_state_dict(a.state_dict())
    convs = [p for p in b.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    batch = [dict(x, image=x["image"].double()) for x in training_batch(2, 64, 96, 8, seed=1)]
    grads = []
    for model in (a, b):
        torch.manual_seed(5)  # the same positive / negative samples and BANE tie-breaks
        with EventStorage(1):
            losses = model(batch)
        sum(losses.values()).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
        grads[-1]["losses"] = torch.stack([losses[k].detach() for k in sorted(losses)])
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        # The contrastive math runs in float32 by design: its gradients carry float32 rounding.
        assert_close_to_reference(grads[1][name], grads[0][name], rtol=1e-5, what=name)
    a.eval(), b.eval()
    x = torch.rand(1, 3, 70, 90, dtype=torch.float64) * 255
    with torch.no_grad():
        assert_close_to_reference(b.forward_logits(x), a.forward_logits(x), rtol=1e-9)


def test_projection_head_equals_conv_and_normalize():
    """The GEMM form computes what Conv2d -> ReLU -> BN -> Conv2d -> F.normalize computes, values
    and gradients (the module structure, and so the checkpoint keys, are the same)."""
    torch.manual_seed(0)
    head = ConvMLPProjectionHead(12, proj_dim=8, norm="BN").train()
    x = torch.randn(3, 12, 5, 7)
    g = torch.randn(3, 8, 5, 7)
    x1 = x.clone().requires_grad_(True)
    out = head(x1)
    (out * g).sum().backward()
    grads = {n: p.grad.clone() for n, p in head.named_parameters()}
    head.zero_grad()
    x2 = x.clone().requires_grad_(True)
    ref = F.normalize(head.proj(x2), p=2, dim=1)
    (ref * g).sum().backward()
    assert_close_to_reference(out, ref, rtol=FP32_RTOL, what="embeddings")
    assert_close_to_reference(x1.grad, x2.grad, rtol=1e-4, what="input gradient")
    for name, p in head.named_parameters():
        assert_close_to_reference(grads[name], p.grad, rtol=1e-4, what=name)
    assert sorted(head.state_dict()) == [
        "proj.0.bias", "proj.0.weight", "proj.2.bias", "proj.2.num_batches_tracked",
        "proj.2.running_mean", "proj.2.running_var", "proj.2.weight", "proj.3.bias",
        "proj.3.weight",
    ]  # fmt: skip
