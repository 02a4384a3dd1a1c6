"""CUDA code paths: exact EDT, AMP training step without host syncs, device-agnostic inference.

These tests skip without a GPU (CI has none); ``scripts/gpu_checks.sh`` runs them on a GPU host.
"""

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from helpers import assert_close_to_reference, demo_cfg
from scipy import ndimage

from bench.binary_edt import squared_distance_transform
from contextrast.modeling.contrast.bane import select_boundary_negatives
from contextrast.modeling.contrast.edt import squared_distance_to_other_label

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# CUDA vs CPU kernels in strict float32: the export parity check on an H200 measured 3e-6 of the
# largest logit for HRNetV2-W48 (deploy/README.md); this network is much shallower.
CUDA_FP32_RTOL = 1e-4


def _batch(device, n=4, h=96, w=128, num_classes=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        coarse = torch.randint(0, num_classes, (1, 1, h // 16, w // 16), generator=g).float()
        label = torch.nn.functional.interpolate(coarse, size=(h, w))[0, 0].long()
        image = torch.randint(0, 256, (3, h, w), generator=g).float()
        out.append({"image": image.to(device), "sem_seg": label.to(device)})
    return out


@pytest.mark.parametrize("shape", [(6, 37, 53), (4, 64, 33), (3, 1, 9)])
def test_cuda_edt_equals_scipy(shape):
    maps = torch.rand(shape) < 0.6
    maps[0] = False  # empty
    maps[1] = True  # full: distance to the border
    got = squared_distance_transform(maps.cuda()).cpu().numpy()
    for i, m in enumerate(maps.numpy()):
        padded = np.pad(m, 1) if m.all() else m  # scipy's full map -> border distance
        ref = ndimage.distance_transform_edt(padded) ** 2
        ref = ref[1:-1, 1:-1] if m.all() else ref
        np.testing.assert_array_equal(got[i], np.round(ref), err_msg=f"map {i}")


@pytest.mark.parametrize("shape", [(3, 40, 71), (2, 64, 33)])
def test_cuda_label_map_transform_equals_cpu(shape):
    labels = torch.randint(0, 4, shape)
    labels[0] = 2  # a single-label map: border distance
    cpu = squared_distance_to_other_label(labels, ignore_label=3)
    torch.testing.assert_close(
        squared_distance_to_other_label(labels.cuda(), ignore_label=3).cpu(), cpu
    )


def test_cuda_bane_selection_matches_cpu():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(0, 5, (2, 1, 6, 8), generator=g).float()
    gt = torch.nn.functional.interpolate(gt, size=(48, 64))[:, 0].long()
    pred = torch.where(torch.rand(gt.shape, generator=g) < 0.2, (gt + 1) % 5, gt)
    kwargs = dict(num_classes=5, ignore_value=255, top_k_ratio=0.5)
    cpu = select_boundary_negatives(pred, gt, **kwargs)
    cuda = select_boundary_negatives(pred.cuda(), gt.cuda(), **kwargs)
    assert bool(cpu.negatives.any())
    torch.testing.assert_close(cuda.negatives.cpu(), cpu.negatives)
    torch.testing.assert_close(cuda.anchor.cpu()[cpu.negatives], cpu.anchor[cpu.negatives])
    torch.testing.assert_close(cuda.num_errors.cpu(), cpu.num_errors)


def test_amp_training_step_is_finite_float32_and_never_syncs():
    """A full CE + CCL + BANE step under autocast: no host synchronisation anywhere in it."""
    torch.manual_seed(0)
    model = build_model(demo_cfg("MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", "True"))
    model.train()
    batch = _batch("cuda")
    with EventStorage(1):  # iteration 1: not a statistics-logging iteration
        with torch.autocast("cuda", dtype=torch.float16):
            model(batch)  # warm-up: cuDNN/cuBLAS handles and lazy initialisation
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            with torch.autocast("cuda", dtype=torch.float16):
                losses = model(batch)
            sum(losses.values()).backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert set(losses) == {"loss_sem_seg", "loss_contrast"}
    assert losses["loss_contrast"].dtype == torch.float32
    assert all(bool(torch.isfinite(v)) for v in losses.values())
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("contrast_heads.")]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)


def test_cuda_inference_matches_cpu():
    torch.manual_seed(0)
    model = build_model(demo_cfg("MODEL.DEVICE", "cuda")).eval()
    images = torch.rand(2, 3, 64, 96) * 255
    # Strict float32 on the GPU (TF32 rounds operands to 10 mantissa bits, ~1e-3 each), as the
    # deploy parity check does; the bound is relative to the largest logit (~1e-2 here).
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            on_gpu = model.forward_logits(images.cuda()).cpu()
            model.to("cpu")
            on_cpu = model.forward_logits(images)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    assert on_gpu.shape == on_cpu.shape
    assert_close_to_reference(on_gpu, on_cpu, rtol=CUDA_FP32_RTOL, what="logits")
