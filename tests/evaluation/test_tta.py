"""SemSegTTA: multi-scale + flip softmax averaging, and its use by ContextrastTrainer.test."""

import pytest
import torch
import torch.nn.functional as F
from helpers import SMALL_HEADS_OPTS, demo_cfg, tiny_model

from contextrast.engine import ContextrastTrainer
from contextrast.evaluation import SemSegTTA


@pytest.fixture(scope="module")
def model():
    return tiny_model(demo_cfg(*SMALL_HEADS_OPTS))


def image(h=70, w=90, seed=0):
    # Odd sizes exercise the padding to the backbone stride; uint8 like the mapper's output.
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)


def softmax_of(model, img, **size):
    return model([{"image": img, **size}])[0]["sem_seg"].softmax(0)


@torch.no_grad()
def test_single_scale_without_flip_is_the_plain_softmax(model):
    img = image()
    tta = SemSegTTA(model, scales=[1.0], flip=False)
    out = tta([{"image": img, "height": 70, "width": 90}])
    assert len(out) == 1 and out[0]["sem_seg"].shape == (8, 70, 90)
    torch.testing.assert_close(out[0]["sem_seg"], softmax_of(model, img), rtol=0, atol=1e-6)
    # Built from the config: the same with TEST.AUG.SCALES (1.0,) and no flip.
    cfg = demo_cfg(*SMALL_HEADS_OPTS, "TEST.AUG.SCALES", "(1.0,)", "TEST.AUG.FLIP", "False")
    out_cfg = SemSegTTA(cfg, model)([{"image": img}])
    torch.testing.assert_close(out_cfg[0]["sem_seg"], out[0]["sem_seg"], rtol=0, atol=1e-6)


@torch.no_grad()
def test_flip_averages_the_flipped_pass_back_in_place(model):
    img = image(seed=1)
    out = SemSegTTA(model, scales=[1.0], flip=True)([{"image": img}])[0]["sem_seg"]
    plain = softmax_of(model, img)
    flipped_back = softmax_of(model, img.flip(-1)).flip(-1)
    torch.testing.assert_close(out, (plain + flipped_back) / 2, rtol=0, atol=1e-5)
    assert (plain - flipped_back).abs().max() > 1e-3  # the flip really changes the prediction


@torch.no_grad()
def test_scales_resize_the_input_and_average_at_the_original_size(model):
    # The mapper resized a 140x180 image to 70x90: output at the original 140x180.
    img = image(seed=2)
    tta = SemSegTTA(model, scales=[0.5, 1.0, 1.5], flip=False)
    assert tta.target_sizes(70, 90) == [(35, 45), (70, 90), (105, 135)]
    out = tta([{"image": img, "height": 140, "width": 180}])[0]["sem_seg"]
    assert out.shape == (8, 140, 180)
    torch.testing.assert_close(out.sum(0), torch.ones(140, 180))
    expected = sum(
        softmax_of(model, F.interpolate(img[None].float(), size=s, mode="bilinear")[0],
                   height=140, width=180)
        for s in [(35, 45), (70, 90), (105, 135)]
    ) / 3  # fmt: skip
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_paper_scales_and_detectron2_min_sizes():
    cfg = demo_cfg(*SMALL_HEADS_OPTS, "TEST.AUG.ENABLED", "True")
    tta = SemSegTTA(cfg, torch.nn.Identity())
    assert tta.scales == (0.75, 1.0, 1.25, 1.5, 1.75, 2.0) and tta.flip and tta.num_views == 12
    assert tta.target_sizes(360, 480) == [(270, 360), (360, 480), (450, 600), (540, 720),
                                          (630, 840), (720, 960)]  # fmt: skip
    # Empty SCALES: detectron2's absolute short edges, long edge capped at MAX_SIZE.
    cfg.merge_from_list(["TEST.AUG.SCALES", "()", "TEST.AUG.MIN_SIZES", "(180, 720)",
                         "TEST.AUG.MAX_SIZE", "800"])  # fmt: skip
    tta = SemSegTTA(cfg, torch.nn.Identity())
    assert tta.target_sizes(360, 480) == [(180, 240), (600, 800)]
    with pytest.raises(ValueError, match="scales"):
        SemSegTTA(torch.nn.Identity(), scales=[], min_sizes=[])


@torch.no_grad()
def test_training_only_parts_never_run(model, monkeypatch):
    assert model.contrast_heads is not None  # a Contextrast model, not the baseline

    def fail(*args, **kwargs):
        raise AssertionError("a training-only part ran at test time")

    for module in model.contrast_heads.modules():
        monkeypatch.setattr(module, "forward", fail)
    monkeypatch.setattr(type(model.criterion), "__call__", fail)
    out = SemSegTTA(model, scales=[0.75, 1.25], flip=True)([{"image": image()}])
    assert out[0]["sem_seg"].shape == (8, 70, 90)
    tta = SemSegTTA(model, scales=[1.0]).train()
    with pytest.raises(RuntimeError, match="inference-only"):
        tta([{"image": image()}])
    model.eval()


@torch.no_grad()
def test_trainer_test_runs_the_tta_model(subset):
    name = subset("synth_streets_val", 2)
    cfg = demo_cfg(*SMALL_HEADS_OPTS, "DATASETS.TEST", f"('{name}',)", "TEST.AUG.ENABLED", "True",
                   "TEST.AUG.SCALES", "(0.5, 1.0)")  # fmt: skip
    model = tiny_model(cfg)
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    res = ContextrastTrainer.test(cfg, model)
    # 2 images x 2 sizes, each a batch of the plain and the flipped view.
    assert calls == [2, 2, 2, 2]
    assert 0.0 <= res["sem_seg"]["mIoU"] <= 100.0


@torch.no_grad()
def test_camvid_val_with_tta_through_sem_seg_evaluator(camvid_root, subset):
    name = subset("camvid_val", 2)
    # Inputs shrunk to 90x120 for speed; the TTA output is scored at the original 360x480.
    cfg = demo_cfg(*SMALL_HEADS_OPTS, "DATASETS.TEST", f"('{name}',)",
                   "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "11", "INPUT.FORMAT", "RGB",
                   "INPUT.MIN_SIZE_TEST", "90", "TEST.AUG.ENABLED", "True")  # fmt: skip
    model = tiny_model(cfg)
    sizes = []
    model.register_forward_hook(lambda m, args, out: sizes.append(tuple(out[0]["sem_seg"].shape)))
    res = ContextrastTrainer.test(cfg, model)["sem_seg"]
    assert len(sizes) == 2 * 6 and set(sizes) == {(11, 360, 480)}
    assert 0.0 <= res["mIoU"] <= 100.0 and 0.0 <= res["pACC"] <= 100.0
    assert {"IoU-Sky", "IoU-Road", "IoU-Bicyclist"} <= set(res)
