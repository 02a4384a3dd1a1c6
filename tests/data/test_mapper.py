"""SemSegDatasetMapper and the augmentations: synth_streets, label LUTs and bad input."""

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.data import transforms as T
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.projects.deeplab import add_deeplab_config
from helpers.datasets import FAKE_LUT, write_png
from PIL import Image

from contextrast.config import add_contextrast_config
from contextrast.data import SemSegDatasetMapper, synthetic
from contextrast.data.augmentations import (
    RandomSaturation,
    build_sem_seg_test_augmentation,
    build_sem_seg_train_augmentation,
)


@pytest.fixture(scope="module")
def synth_records(tmp_path_factory):
    """The first records of synth_streets_train, through the registered loader (small cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CONTEXTRAST_CACHE", str(tmp_path_factory.mktemp("contextrast_cache")))
        mp.setattr(synthetic, "SPLITS", {"train": 24, "val": 4})
        yield DatasetCatalog.get("synth_streets_train")


def make_cfg(num_classes=8):
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_contextrast_config(cfg)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.DATASETS.TRAIN = ("synth_streets_train",)
    cfg.DATASETS.TEST = ("synth_streets_val",)
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN = (80, 320)  # 0.5x - 2.0x of the 160 px short side
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "range"
    cfg.INPUT.MAX_SIZE_TRAIN = 2000
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = (128, 192)
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 0.75
    cfg.INPUT.MIN_SIZE_TEST = 0
    return cfg


RAW = np.array([[10, 10, 20, 20, 30, 30, 11, 11]] * 6)
EXPECTED = np.array([[0, 0, 1, 1, 2, 2, 255, 255]] * 6)


def test_train_augmentation_recipe():
    cfg = make_cfg()
    augs = build_sem_seg_train_augmentation(cfg)
    assert [type(a) for a in augs] == [
        T.ResizeShortestEdge,
        T.RandomCrop_CategoryAreaConstraint,
        T.RandomBrightness,
        T.RandomContrast,
        RandomSaturation,
        T.RandomFlip,
    ]
    assert augs[0].short_edge_length == (80, 320) and augs[0].is_range
    assert augs[1].crop_aug.crop_size == (128, 192) and augs[1].single_category_max_area == 0.75
    assert augs[1].ignored_category == 255 and augs[5].horizontal
    cfg.INPUT.COLOR_JITTER, cfg.INPUT.RANDOM_FLIP, cfg.INPUT.CROP.ENABLED = False, "none", False
    assert [type(a) for a in build_sem_seg_train_augmentation(cfg)] == [T.ResizeShortestEdge]
    cfg.INPUT.RANDOM_FLIP = "diagonal"
    with pytest.raises(ValueError, match="INPUT.RANDOM_FLIP.*'diagonal'"):
        build_sem_seg_train_augmentation(cfg)


def test_test_augmentation():
    cfg = make_cfg()
    assert build_sem_seg_test_augmentation(cfg) == []
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 80, 1000
    (aug,) = build_sem_seg_test_augmentation(cfg)
    assert aug.get_transform(np.zeros((160, 240, 3), np.uint8)).apply_image(
        np.zeros((160, 240, 3), np.uint8)
    ).shape == (80, 120, 3)


def test_saturation_uses_the_channel_order():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    grey_rgb = RandomSaturation(0.0, 0.0, "RGB").get_transform(rgb).apply_image(rgb)
    grey_bgr = (
        RandomSaturation(0.0, 0.0, "BGR")
        .get_transform(rgb[..., ::-1])
        .apply_image(rgb[..., ::-1].copy())
    )
    assert np.abs(grey_rgb.astype(int) - grey_bgr[..., ::-1]).max() <= 1
    assert np.abs(grey_rgb.astype(int) - grey_rgb[..., :1]).max() <= 1  # grey: equal channels
    with pytest.raises(ValueError, match="image_format 'YUV'"):
        RandomSaturation(0.5, 1.5, "YUV")


def test_training_mapper_on_synth_streets(synth_records):
    mapper = SemSegDatasetMapper(make_cfg(), is_train=True)
    np.random.seed(0)
    shapes = set()
    for record in synth_records[:24]:
        out = mapper(record)
        image, sem_seg = out["image"], out["sem_seg"]
        assert image.dtype == torch.uint8 and sem_seg.dtype == torch.int64
        assert image.shape[0] == 3
        assert image.shape[1:] == sem_seg.shape and sem_seg.shape[0] <= 128
        assert sem_seg.shape[1] <= 192
        assert set(sem_seg.unique().tolist()) <= set(range(8)) | {255}
        assert "sem_seg_file_name" not in out and "sem_seg_file_name" in record
        shapes.add(tuple(sem_seg.shape))
    assert (128, 192) in shapes and len(shapes) > 2  # random scale: some scaled images < crop


def test_inference_mapper_reads_files_exactly_and_flip_keeps_alignment(synth_records):
    cfg = make_cfg()
    cfg.INPUT.FORMAT = "BGR"
    record = synth_records[5]
    rgb = np.asarray(Image.open(record["file_name"]))
    label = np.asarray(Image.open(record["sem_seg_file_name"]))
    out = SemSegDatasetMapper(cfg, is_train=False)(record)
    assert np.array_equal(out["image"].numpy().transpose(1, 2, 0), rgb[..., ::-1])
    assert np.array_equal(out["sem_seg"].numpy(), label)
    flip = SemSegDatasetMapper(
        True, augmentations=[T.RandomFlip(prob=1.0)], image_format="RGB", num_classes=8
    )(record)
    assert np.array_equal(flip["image"].numpy().transpose(1, 2, 0), rgb[:, ::-1])
    assert np.array_equal(flip["sem_seg"].numpy(), label[:, ::-1])


@pytest.mark.parametrize("palette", [False, True])
def test_label_lut_is_applied(fake_datasets, palette):
    name, records = fake_datasets.labelled([RAW, RAW[:, ::-1]], palette=palette)
    mapper = SemSegDatasetMapper(make_cfg(num_classes=3), is_train=False, dataset_name=name)
    assert np.array_equal(mapper(records[0])["sem_seg"].numpy(), EXPECTED)
    assert np.array_equal(mapper(records[1])["sem_seg"].numpy(), EXPECTED[:, ::-1])


def test_bad_labels_name_the_file(fake_datasets):
    cfg = make_cfg(num_classes=3)
    name, records = fake_datasets.labelled([RAW, np.where(RAW == 30, 7, RAW)], lut=None)
    mapper = SemSegDatasetMapper(cfg, is_train=False, dataset_name=name)
    # Without a LUT the raw values 10/20/30 are not train ids; then 7 is out of range.
    with pytest.raises(ValueError, match=f"{records[0]['sem_seg_file_name']}.*10, 11, 20, 30"):
        mapper(records[0])
    name, records = fake_datasets.labelled(
        [np.where(RAW == 30, 40, RAW)], lut=np.where(FAKE_LUT == 0, 5, FAKE_LUT)
    )
    mapper = SemSegDatasetMapper(cfg, is_train=False, dataset_name=name)
    with pytest.raises(
        ValueError, match=f"{records[0]['sem_seg_file_name']}.*\\[5\\].*raw .*\\[10\\]"
    ):
        mapper(records[0])


def test_bad_files_name_the_file(fake_datasets, tmp_path):
    cfg = make_cfg(num_classes=3)
    name, records = fake_datasets.labelled([RAW, RAW, RAW, RAW, RAW])
    mapper = SemSegDatasetMapper(cfg, is_train=False, dataset_name=name)
    # Truncated files: the image of record 0, the label of record 1.
    for record, key, kind in ((records[0], "file_name", "image"),
                              (records[1], "sem_seg_file_name", "label")):  # fmt: skip
        with open(record[key], "rb") as f:
            data = f.read()
        with open(record[key], "wb") as f:
            f.write(data[: len(data) // 2])
        with pytest.raises(ValueError, match=f"cannot decode {kind} file {record[key]}"):
            mapper(record)
    # Size mismatch between the image and its label: both files named.
    write_png(records[2]["sem_seg_file_name"], np.full((6, 9), 10))
    with pytest.raises(ValueError, match=f"{records[2]['sem_seg_file_name']} is 9x6.*"):
        mapper(records[2])
    with pytest.raises(ValueError, match=f"image file {records[2]['file_name']} is 8x6"):
        mapper(records[2])
    # Record height/width disagreeing with the image (detectron2's own check names the image).
    with pytest.raises(SizeMismatchError, match=records[3]["file_name"]):
        mapper(dict(records[3], height=7))
    write_png(records[3]["sem_seg_file_name"], np.full((6, 8, 3), 10))
    with pytest.raises(ValueError, match=f"{records[3]['sem_seg_file_name']} has mode RGB"):
        mapper(records[3])
    missing = str(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match=f"image file not found: {missing}"):
        mapper(dict(records[4], file_name=missing))
    with pytest.raises(FileNotFoundError, match=f"label file not found: {missing}"):
        mapper(dict(records[4], sem_seg_file_name=missing))


def test_bad_config_and_metadata(fake_datasets):
    name, _ = fake_datasets.labelled([RAW])
    with pytest.raises(ValueError, match="NUM_CLASSES=8 differs from the 3 stuff_classes"):
        SemSegDatasetMapper(make_cfg(), is_train=False, dataset_name=name)
    cfg = make_cfg(num_classes=3)
    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 254
    with pytest.raises(ValueError, match="IGNORE_VALUE=254 differs"):
        SemSegDatasetMapper(cfg, is_train=False, dataset_name=name)
    other, _ = fake_datasets.labelled([RAW], lut=None)
    cfg = make_cfg(num_classes=3)
    cfg.DATASETS.TRAIN = (name, other)
    with pytest.raises(ValueError, match=f"{name}.*{other}.*differ"):
        SemSegDatasetMapper(cfg, is_train=True)
    bad_lut, _ = fake_datasets.labelled([RAW], lut=FAKE_LUT[:255])
    with pytest.raises(ValueError, match=f"{bad_lut}.*'label_lut' must be 256 ints"):
        SemSegDatasetMapper(make_cfg(num_classes=3), is_train=False, dataset_name=bad_lut)
