"""datasets/prepare_*.py: the converted label values, the loaders on their output, and clear
errors for bad input."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from helpers.datasets import (
    COCO_EXPECTED,
    PC_EXPECTED,
    H,
    W,
    build_coco_stuff_raw,
    build_pascal_context_raw,
    load_dataset_script,
    write_mat,
)
from PIL import Image

from contextrast.data.datasets.coco_stuff import load_coco_stuff_10k
from contextrast.data.datasets.pascal_context import load_pascal_context_59


def test_prepare_pascal_context_59_values_and_loader(fake_root):
    voc = fake_root / "VOCdevkit" / "VOC2010"
    for split, count in [("train", 3), ("val", 2)]:
        records = load_pascal_context_59(str(fake_root), split)
        assert len(records) == count
        for r in records:
            assert Path(r["file_name"]).parent == voc / "JPEGImages"
            assert (
                Path(r["sem_seg_file_name"]).parent
                == voc / "annotations_detectron2" / f"pc59_{split}"
            )
            assert (r["height"], r["width"]) == (H, W)
            label = Image.open(r["sem_seg_file_name"])
            assert label.mode == "L"
            expected = np.resize(np.asarray(PC_EXPECTED, dtype=np.uint8), H * W).reshape(H, W)
            np.testing.assert_array_equal(np.asarray(label), expected)
    # Records follow the converted split, not the shared JPEGImages folder.
    assert [Path(r["file_name"]).stem for r in records] == ["2008_000008", "2008_000009"]


def test_prepare_coco_stuff_10k_values_and_loader(fake_root):
    base = fake_root / "coco_stuff_10k"
    for split, count in [("train", 3), ("test", 1)]:
        records = load_coco_stuff_10k(str(fake_root), split)
        assert len(records) == count
        for r in records:
            assert Path(r["file_name"]).parent == base / "images"
            assert Path(r["sem_seg_file_name"]).parent == base / "annotations_detectron2" / split
            expected = np.resize(np.asarray(COCO_EXPECTED, dtype=np.uint8), H * W).reshape(H, W)
            np.testing.assert_array_equal(np.asarray(Image.open(r["sem_seg_file_name"])), expected)
    assert Path(records[0]["file_name"]).stem == "COCO_val2014_000000000042"


def test_prepare_scripts_reject_bad_input(tmp_path):
    prepare_pc = load_dataset_script("prepare_pascal_context_59")
    with pytest.raises(FileNotFoundError, match="input folder not found.*DETECTRON2_DATASETS"):
        prepare_pc.main(["--voc-root", str(tmp_path / "no_voc")])
    voc = tmp_path / "VOC2010"
    build_pascal_context_raw(voc, ["2008_000002"], ["2008_000008"])
    write_mat(voc / "trainval" / "2008_000008.mat", "LabelMap", [0, 460])  # beyond the 459 classes
    with pytest.raises(ValueError, match="2008_000008.mat.*0..460.*expected 0..459"):
        prepare_pc.main(["--voc-root", str(voc), "--workers", "1", "--splits", "val"])
    (voc / "trainval" / "2008_000002.mat").unlink()
    with pytest.raises(FileNotFoundError, match="2008_000002.mat"):
        prepare_pc.main(["--voc-root", str(voc), "--workers", "1", "--splits", "train"])
    (voc / "labels.txt").write_text("2: bicycle\n")
    with pytest.raises(ValueError, match="labels.txt.*2: expected 'aeroplane', found 'bicycle'"):
        prepare_pc.main(["--voc-root", str(voc), "--workers", "1"])

    prepare_coco = load_dataset_script("prepare_coco_stuff_10k")
    base = tmp_path / "coco_stuff_10k"
    build_coco_stuff_raw(base, ["COCO_train2014_000000000001"], ["COCO_val2014_000000000002"])
    scipy.io.savemat(
        base / "annotations" / "COCO_val2014_000000000002.mat", {"L": np.zeros((2, 2))}
    )
    with pytest.raises(ValueError, match="has no variable 'S'"):
        prepare_coco.main(["--root", str(base), "--workers", "1", "--splits", "test"])
    write_mat(base / "annotations" / "COCO_val2014_000000000002.mat", "S", [183])
    with pytest.raises(ValueError, match="expected 0..182"):
        prepare_coco.main(["--root", str(base), "--workers", "1", "--splits", "test"])
    assert not list((base / "annotations_detectron2" / "test").iterdir())  # nothing half-written
