"""The embeddings of the feature metrics: the input of each head's final classifier."""

import pytest
import torch
from detectron2.layers import ShapeSpec
from helpers import FP32_RTOL, SMALL_HEADS_OPTS, assert_close_to_reference, demo_cfg, tiny_model

from contextrast.evaluation import ClassifierInputCapture, SegmentorWithEmbeddings, find_classifier
from contextrast.modeling.heads import HRNetV2Head, OCRHead


@torch.no_grad()
def test_aspp_embeddings_are_the_aspp_output_cropped_per_image():
    model = tiny_model(demo_cfg(*SMALL_HEADS_OPTS))
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
              for h, w in [(70, 90), (40, 50)]]  # fmt: skip
    wrapped = SegmentorWithEmbeddings(model)
    assert not wrapped.training
    outputs = wrapped([{"image": x} for x in images])
    plain = model([{"image": x} for x in images])
    # Padded batch 80x96 at stride 16 -> 5x6 features; each image keeps ceil(H/16) x ceil(W/16).
    assert outputs[0]["embeddings"].shape == (64, 5, 6)
    assert outputs[1]["embeddings"].shape == (64, 3, 4)
    padded = torch.zeros(2, 3, 80, 96)
    for i, x in enumerate(images):
        padded[i, :, : x.shape[1], : x.shape[2]] = model._normalize(x.float())
    aspp = model.sem_seg_head.aspp(model.backbone(padded)["res5"])
    # Embeddings reach ~80 in this random network: relative, not absolute, tolerance.
    assert_close_to_reference(outputs[0]["embeddings"], aspp[0], rtol=FP32_RTOL)
    assert_close_to_reference(outputs[1]["embeddings"], aspp[1, :, :3, :4], rtol=FP32_RTOL)
    for out, ref in zip(outputs, plain):  # predictions unchanged
        torch.testing.assert_close(out["sem_seg"], ref["sem_seg"])


@pytest.mark.parametrize("head_cls, channels", [(HRNetV2Head, 60), (OCRHead, 16)])
@torch.no_grad()
def test_hrnet_and_ocr_heads_expose_their_classifier_input(head_cls, channels):
    shapes = {f"branch{i + 1}": ShapeSpec(channels=c, stride=s)
              for i, (c, s) in enumerate([(4, 4), (8, 8), (16, 16), (32, 32)])}  # fmt: skip
    kwargs = {"mid_channels": 16, "key_channels": 8} if head_cls is OCRHead else {}
    torch.manual_seed(0)
    head = head_cls(shapes, num_classes=5, **kwargs).eval()
    features = {k: torch.randn(2, s.channels, 64 // s.stride, 96 // s.stride)
                for k, s in shapes.items()}  # fmt: skip
    with ClassifierInputCapture(find_classifier(head)) as capture:
        logits = head.layers(features)["sem_seg"]
    assert len(capture.inputs) == 1 and capture.inputs[0].shape == (2, channels, 16, 24)
    torch.testing.assert_close(head.predictor(capture.inputs[0]), logits)
    head.layers(features)  # the hook is gone after the block
    assert len(capture.inputs) == 1


def test_head_without_predictor_is_rejected():
    with pytest.raises(ValueError, match="predictor"):
        find_classifier(torch.nn.Conv2d(3, 3, 1))
