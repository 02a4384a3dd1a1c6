"""Dataset loaders: records of the fake trees and of real CamVid, errors naming the missing
files, and the mapper on one record of every dataset."""

import os
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import MetadataCatalog
from detectron2.data.datasets.cityscapes import load_cityscapes_semantic
from detectron2.data.datasets.coco import load_sem_seg
from helpers.datasets import CATALOG, H, W, write_image, write_label
from PIL import Image

import contextrast.data  # noqa: F401  (registration)
from contextrast.config import get_contextrast_cfg
from contextrast.data import SemSegDatasetMapper, load_sem_seg_label
from contextrast.data.datasets.camvid import load_camvid
from contextrast.data.datasets.coco_stuff import load_coco_stuff_10k
from contextrast.data.datasets.pascal_context import load_pascal_context_59


def test_camvid_fake_tree(fake_root):
    for split, count in [("train", 3), ("val", 2), ("test", 1)]:
        records = load_camvid(str(fake_root), split)
        assert len(records) == count
        assert [r["file_name"] for r in records] == sorted(r["file_name"] for r in records)
        for r in records:
            assert set(r) == {"file_name", "sem_seg_file_name", "height", "width"}
            assert (r["height"], r["width"]) == (H, W)
            assert Path(r["file_name"]).parent.name == split
            assert Path(r["sem_seg_file_name"]).parent.name == f"{split}annot"
            assert Path(r["file_name"]).name == Path(r["sem_seg_file_name"]).name


def _camvid_tree(root: Path, n_images=2, n_labels=2) -> Path:
    (root / "camvid" / "train").mkdir(parents=True)
    for i in range(n_images):
        write_image(root / "camvid" / "train" / f"a{i}.png", i)
    (root / "camvid" / "trainannot").mkdir(parents=True, exist_ok=True)
    for i in range(n_labels):
        write_label(root / "camvid" / "trainannot" / f"a{i}.png", [0])
    return root


def _error(fn, *args) -> str:
    with pytest.raises(FileNotFoundError) as info:
        fn(*args)
    message = str(info.value)
    assert "DETECTRON2_DATASETS" in message and "Expected tree" in message, message
    return message


@pytest.mark.parametrize(
    "loader, split, tree_part",
    [
        (load_camvid, "train", "trainannot/"),
        (load_pascal_context_59, "val", "annotations_detectron2/pc59_val"),
        (load_coco_stuff_10k, "test", "imageLists/{train,test}.txt"),
    ],
)
def test_missing_root_and_split(tmp_path, loader, split, tree_part):
    missing = tmp_path / "missing"
    message = _error(loader, str(missing), split)
    assert f"'{missing}'" in message and tree_part in message
    tmp_path.joinpath("empty").mkdir()
    message = _error(loader, str(tmp_path / "empty"), split)
    assert "split folder not found" in message and str(tmp_path / "empty") in message


def test_empty_split_and_missing_partner(tmp_path):
    root = _camvid_tree(tmp_path / "empty", n_images=0, n_labels=0)
    assert "empty split" in _error(load_camvid, str(root), "train")

    root = _camvid_tree(tmp_path / "unpaired", n_images=2, n_labels=1)
    message = _error(load_camvid, str(root), "train")
    image = root / "camvid" / "train" / "a1.png"
    label = root / "camvid" / "trainannot" / "a1.png"
    assert f"image '{image}' has no label file" in message and f"'{label}'" in message

    voc = tmp_path / "pc" / "VOCdevkit" / "VOC2010"
    write_image(voc / "JPEGImages" / "2008_000001.jpg", 0)
    write_label(voc / "annotations_detectron2" / "pc59_train" / "2008_000001.png", [0])
    write_label(voc / "annotations_detectron2" / "pc59_train" / "2008_000005.png", [0])
    message = _error(load_pascal_context_59, str(tmp_path / "pc"), "train")
    assert str(voc / "annotations_detectron2" / "pc59_train" / "2008_000005.png") in message
    assert str(voc / "JPEGImages" / "2008_000005.jpg") in message


def test_real_camvid(camvid_root):
    root = os.path.dirname(camvid_root)
    assert os.path.basename(camvid_root) == "camvid"
    lut = np.asarray(MetadataCatalog.get("camvid_train").label_lut)  # -1: cannot occur
    for split, count in [("train", 367), ("val", 101)]:
        records = load_camvid(root, split)
        assert len(records) == count
        assert all((r["height"], r["width"]) == (360, 480) for r in records)
        present = np.zeros(256, dtype=bool)
        for r in records:
            present[np.asarray(Image.open(r["sem_seg_file_name"])).ravel()] = True
        raw_values = set(np.flatnonzero(present).tolist())
        assert raw_values <= set(range(12)), (split, raw_values)
        if split == "train":
            assert raw_values == set(range(12))  # every class and void occur in train
        assert set(lut[sorted(raw_values)].tolist()) <= set(range(11)) | {255}


def _mapper(dataset_name: str, num_classes: int) -> SemSegDatasetMapper:
    cfg = get_contextrast_cfg()
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN = (24, 36)
    cfg.INPUT.MAX_SIZE_TRAIN = 100
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = (16, 16)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
    return SemSegDatasetMapper(cfg, is_train=True, dataset_name=dataset_name)


@pytest.mark.parametrize("name, num_classes", [(n, k) for n, k, *_ in CATALOG[::2]])
def test_mapper_on_one_record_per_dataset(fake_root, name, num_classes):
    city, ade = fake_root / "cityscapes", fake_root / "ADEChallengeData2016"
    load = {
        "camvid_train": lambda: load_camvid(str(fake_root), "train"),
        "pascal_context_59_sem_seg_train": lambda: load_pascal_context_59(str(fake_root), "train"),
        "coco_stuff_10k_sem_seg_train": lambda: load_coco_stuff_10k(str(fake_root), "train"),
        "cityscapes_fine_sem_seg_train": lambda: load_cityscapes_semantic(
            str(city / "leftImg8bit" / "train"), str(city / "gtFine" / "train")
        ),
        "ade20k_sem_seg_train": lambda: load_sem_seg(
            str(ade / "annotations_detectron2" / "training"), str(ade / "images" / "training")
        ),
    }[name]
    record = load()[0]
    out = _mapper(name, num_classes)(record)
    assert out["image"].shape == (3, 16, 16)
    values = set(out["sem_seg"].unique().tolist())
    assert values <= set(range(num_classes)) | {255}, (name, values)
    if name == "camvid_train":
        # The whole label map goes through label_lut: void 11 becomes 255, classes stay.
        full = load_sem_seg_label(
            record["sem_seg_file_name"], num_classes=11, label_lut=_mapper(name, 11).label_lut
        )
        assert set(np.unique(full).tolist()) == set(range(11)) | {255}
