"""The official Cityscapes evaluation (cityscapesScripts through detectron2's evaluator) on a
generated Cityscapes tree: its IoU agrees with SemSegEvaluator's mIoU, its iIoU reads the
instance files, both land under their own results keys, and the label-id PNGs can be kept."""

import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.cityscapes import load_cityscapes_semantic
from helpers import demo_cfg
from helpers.cityscapes import build_cityscapes_tree, eval_label_ids
from PIL import Image

from contextrast.evaluation import CITYSCAPES_RESULTS_KEY, build_sem_seg_evaluator

pytest.importorskip("cityscapesscripts", reason="the [cityscapes] extra is not installed")

NUM_CLASSES = 19


@pytest.fixture(scope="module")
def val_dataset(tmp_path_factory):
    """Name of a registered 2-image Cityscapes val split with detectron2's Cityscapes metadata."""
    base = build_cityscapes_tree(tmp_path_factory.mktemp("datasets"), {"val": 2})
    image_dir, gt_dir = str(base / "leftImg8bit" / "val"), str(base / "gtFine" / "val")
    name = f"cityscapes_fake_val_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: load_cityscapes_semantic(image_dir, gt_dir))
    source = MetadataCatalog.get("cityscapes_fine_sem_seg_val").as_dict()
    meta = {k: v for k, v in source.items() if k not in ("name", "image_dir", "gt_dir")}
    MetadataCatalog.get(name).set(image_dir=image_dir, gt_dir=gt_dir, **meta)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def _evaluate(name, predict, label_id_dir=None):
    """Run the project's evaluator over ``name`` with ``predict(train_ids) -> train_ids``."""
    cfg = demo_cfg("MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(NUM_CLASSES))
    evaluator = build_sem_seg_evaluator(cfg, name, label_id_dir=label_id_dir)
    evaluator.reset()
    for record in DatasetCatalog.get(name):
        train_ids = np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64)
        pred = torch.from_numpy(predict(train_ids))
        logits = F.one_hot(pred, NUM_CLASSES).permute(2, 0, 1).float()
        evaluator.process([record], [{"sem_seg": logits}])
    return evaluator.evaluate()


def _perfect(train_ids):
    return np.where(train_ids == 255, 0, train_ids)


def _noisy(train_ids):
    """Right on most pixels; every fifth row a random class of those in the image's ground truth
    (the official mean also counts classes only predicted, at IoU 0; SemSegEvaluator's does not:
    the two agree when, as on the full val split, every class is in the ground truth)."""
    pred = _perfect(train_ids).copy()
    present = np.unique(train_ids[train_ids != 255])
    pred[::5] = np.random.RandomState(0).choice(present, pred[::5].shape)
    return pred


def test_official_iou_agrees_with_sem_seg_miou(val_dataset):
    perfect = _evaluate(val_dataset, _perfect)
    official = perfect[CITYSCAPES_RESULTS_KEY]
    assert set(official) == {"IoU", "iIoU", "IoU_sup", "iIoU_sup"}
    assert official["IoU"] == pytest.approx(100.0) and official["iIoU"] == pytest.approx(100.0)
    assert perfect["sem_seg"]["mIoU"] == pytest.approx(100.0)

    noisy = _evaluate(val_dataset, _noisy)
    # Two implementations of one definition (void pixels excluded from both sides).
    assert 0.0 < noisy[CITYSCAPES_RESULTS_KEY]["IoU"] < 100.0
    assert noisy[CITYSCAPES_RESULTS_KEY]["IoU"] == pytest.approx(noisy["sem_seg"]["mIoU"])

    # Everything predicted as road: no person or car pixel is right, so iIoU (person, car) is 0.
    road = _evaluate(val_dataset, lambda t: np.zeros_like(t))
    assert road[CITYSCAPES_RESULTS_KEY]["iIoU"] == 0.0


def test_label_id_pngs_kept_for_submission(val_dataset, tmp_path):
    keep = tmp_path / "labelIds"
    keep.mkdir()
    (keep / "stale_000000_000000_leftImg8bit_pred.png").write_bytes(b"old")
    _evaluate(val_dataset, _noisy, label_id_dir=str(keep))
    records = DatasetCatalog.get(val_dataset)
    stems = sorted(r["file_name"].split("/")[-1][: -len(".png")] for r in records)
    assert sorted(p.name for p in keep.iterdir()) == [f"{s}_pred.png" for s in stems]
    for record in records:
        stem = record["file_name"].split("/")[-1][: -len(".png")]
        ids = np.asarray(Image.open(keep / f"{stem}_pred.png"))
        train_ids = _noisy(np.asarray(Image.open(record["sem_seg_file_name"])).astype(np.int64))
        # Label ids, not train ids: the i-th evaluated label id for train id i.
        assert np.array_equal(ids, np.asarray(eval_label_ids())[train_ids])
