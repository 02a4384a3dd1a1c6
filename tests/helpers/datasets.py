"""Tiny fake datasets on disk, in the layouts of the registered datasets, for the data tests."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from contextrast.data.datasets.pascal_context import PASCAL_CONTEXT_59

from .paths import ROOT

__all__ = [
    "H",
    "W",
    "CATALOG",
    "OURS",
    "PC_RAW",
    "PC_EXPECTED",
    "COCO_RAW",
    "COCO_EXPECTED",
    "write_image",
    "write_label",
    "write_mat",
    "load_dataset_script",
    "build_pascal_context_raw",
    "build_coco_stuff_raw",
    "build_fake_root",
]

H, W = 30, 40

# (registered name, number of classes, evaluator type, records in the fake tree below)
CATALOG = [
    ("camvid_train", 11, "sem_seg", 3),
    ("camvid_val", 11, "sem_seg", 2),
    ("pascal_context_59_sem_seg_train", 59, "sem_seg", 3),
    ("pascal_context_59_sem_seg_val", 59, "sem_seg", 2),
    ("coco_stuff_10k_sem_seg_train", 171, "sem_seg", 3),
    ("coco_stuff_10k_sem_seg_test", 171, "sem_seg", 1),
    ("cityscapes_fine_sem_seg_train", 19, "cityscapes_sem_seg", 2),
    ("cityscapes_fine_sem_seg_val", 19, "cityscapes_sem_seg", 1),
    ("ade20k_sem_seg_train", 150, "sem_seg", 2),
    ("ade20k_sem_seg_val", 150, "sem_seg", 1),
]
OURS = [name for name, *_ in CATALOG[:6]]


def write_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.RandomState(seed).randint(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_label(path: Path, values) -> np.ndarray:
    """Write a label PNG whose pixels cycle through ``values`` (so every value is present)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = np.resize(np.asarray(values, dtype=np.uint8), H * W).reshape(H, W)
    Image.fromarray(label).save(path)
    return label


def write_mat(path: Path, key: str, values) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path, {key: np.resize(np.asarray(values, dtype=np.uint16), H * W).reshape(H, W)}
    )


def load_dataset_script(name: str):
    """Import datasets/<name>.py (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(ROOT) / "datasets" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Raw values written into the fake raw annotations, and the train ids they must become.
PC_RAW = [0, 2, 284, 458, 1, 459]  # background, aeroplane, person, wood, accordion, 459th class
PC_EXPECTED = [255, 0, 36, 58, 255, 255]
# unlabeled, person, unused, toothbrush, unused, banner, wood
COCO_RAW = [0, 1, 12, 90, 91, 92, 182]
COCO_EXPECTED = [255, 0, 255, 79, 255, 80, 170]


def build_pascal_context_raw(voc: Path, train_ids, val_ids) -> None:
    for i, image_id in enumerate(train_ids + val_ids):
        write_image(voc / "JPEGImages" / f"{image_id}.jpg", i)
        write_mat(voc / "trainval" / f"{image_id}.mat", "LabelMap", PC_RAW)
    write_image(
        voc / "JPEGImages" / "2010_009999.jpg", 99
    )  # an unannotated (test) image: not a record
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("\n".join(train_ids) + "\n")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("\n".join(val_ids) + "\n")
    names = {raw_id: f"class{raw_id}" for raw_id in range(1, 460)}
    names.update({raw_id: name for name, raw_id in PASCAL_CONTEXT_59})
    (voc / "labels.txt").write_text("".join(f"{k}: {v}\n" for k, v in names.items()))


def build_coco_stuff_raw(base: Path, train_names, test_names) -> None:
    for i, name in enumerate(train_names + test_names):
        write_image(base / "images" / f"{name}.jpg", 10 + i)
        write_mat(base / "annotations" / f"{name}.mat", "S", COCO_RAW)
    (base / "imageLists").mkdir(parents=True)
    (base / "imageLists" / "train.txt").write_text("\n".join(train_names) + "\n")
    (base / "imageLists" / "test.txt").write_text("\n".join(test_names) + "\n")


def build_fake_root(root: Path) -> Path:
    """Fill ``root`` with a tiny datasets tree in every layout (CamVid, PASCAL-Context, COCO-Stuff,
    Cityscapes, ADE20K); PASCAL-Context and COCO-Stuff labels made by the prepare scripts."""
    camvid = root / "camvid"
    for split, image_dir, label_dir, n in [
        ("train", "train", "trainannot", 3),
        ("val", "val", "valannot", 2),
        ("test", "test", "testannot", 1),
    ]:
        for i in range(n):
            write_image(camvid / image_dir / f"0001TP_{split}{i}.png", i)
            write_label(camvid / label_dir / f"0001TP_{split}{i}.png", range(12))

    voc = root / "VOCdevkit" / "VOC2010"
    build_pascal_context_raw(
        voc, ["2008_000002", "2008_000003", "2008_000007"], ["2008_000008", "2008_000009"]
    )
    load_dataset_script("prepare_pascal_context_59").main(
        ["--voc-root", str(voc), "--workers", "1"]
    )

    coco = root / "coco_stuff_10k"
    train_names = [f"COCO_train2014_00000000000{i}" for i in range(3)]
    build_coco_stuff_raw(coco, train_names, ["COCO_val2014_000000000042"])
    load_dataset_script("prepare_coco_stuff_10k").main(["--root", str(coco), "--workers", "1"])

    for split, city, n in [("train", "aachen", 2), ("val", "frankfurt", 1)]:
        for i in range(n):
            stem = f"{city}_000000_00001{i}"
            write_image(
                root / "cityscapes" / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", i
            )
            gt = root / "cityscapes" / "gtFine" / split / city
            write_label(gt / f"{stem}_gtFine_labelIds.png", range(34))
            write_label(gt / f"{stem}_gtFine_instanceIds.png", [0])
            write_label(gt / f"{stem}_gtFine_labelTrainIds.png", list(range(19)) + [255])
            (gt / f"{stem}_gtFine_polygons.json").write_text(
                json.dumps({"imgHeight": H, "imgWidth": W, "objects": []})
            )

    ade = root / "ADEChallengeData2016"
    for split, n in [("training", 2), ("validation", 1)]:
        for i in range(n):
            write_image(ade / "images" / split / f"ADE_{split}_0000000{i}.jpg", i)
            write_label(
                ade / "annotations_detectron2" / split / f"ADE_{split}_0000000{i}.png",
                list(range(150)) + [255],
            )
    return root
