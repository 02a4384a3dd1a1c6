"""Tiny fake datasets on disk, in the layouts of the registered datasets, for the data tests."""

import importlib.util
import json
import uuid
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import scipy.io
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from contextrast.data.datasets.pascal_context import PASCAL_CONTEXT_59

from .paths import ROOT

__all__ = [
    "FAKE_LUT",
    "TemporaryDatasets",
    "write_png",
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


# Raw values of the label files of TemporaryDatasets.labelled and the LUT that maps them:
# 10/20/30 -> classes 0/1/2, 11 (void, CamVid-style) and everything else -> 255 (ignore).
FAKE_LUT = np.full(256, 255, dtype=np.int64)
FAKE_LUT[[10, 20, 30]] = [0, 1, 2]


def write_png(path, array, palette: bool = False) -> str:
    """Write ``array`` (uint8 values) as a PNG; ``palette``: a palette image whose colours'
    luminance differs from the indices (what a reader must not convert)."""
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    if palette:
        image = image.convert("P")
        image.putpalette([(255 - i) % 256 for i in range(256)] * 3)
    image.save(path)
    return str(path)


class TemporaryDatasets:
    """Datasets registered in detectron2's catalogs for one test (the ``fake_datasets`` fixture
    of ``tests/conftest.py`` removes them afterwards), with their files under ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.names: List[str] = []

    def register(self, prefix: str, records: List[Dict], **metadata) -> str:
        """Register ``records`` under a new name starting with ``prefix``; returns the name."""
        return self._register(f"{prefix}_{uuid.uuid4().hex[:8]}", records, metadata)

    def _register(self, name: str, records: List[Dict], metadata: Dict) -> str:
        DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(**metadata)
        self.names.append(name)
        return name

    def labelled(
        self, labels, *, lut=FAKE_LUT, evaluator_type="sem_seg", palette=False, image_size=None
    ) -> Tuple[str, List[Dict]]:
        """A dataset of random images with the given raw label maps (values 10/20/30/11 for
        :data:`FAKE_LUT`), classes ``a, b, c``.

        Args:
            labels: one (H, W) array of raw values per image.
            lut: the ``label_lut`` metadata, or None for none.
            evaluator_type: the ``evaluator_type`` metadata.
            palette: write the labels as palette PNGs (see :func:`write_png`).
            image_size: (H, W) of the images when they should differ from their labels'.

        Returns:
            (registered name, records).
        """
        name = f"fake_lut_{uuid.uuid4().hex[:8]}"
        records = []
        for i, label in enumerate(labels):
            h, w = image_size or np.shape(label)
            image = np.random.default_rng(i).integers(0, 256, (h, w, 3))
            records.append(
                {
                    "file_name": write_png(self.folder / f"{name}_{i}.png", image),
                    "sem_seg_file_name": write_png(
                        self.folder / f"{name}_{i}_l.png", label, palette
                    ),
                    "height": h,
                    "width": w,
                    "image_id": i,
                }
            )
        meta = {"stuff_classes": ["a", "b", "c"], "ignore_label": 255}
        meta["evaluator_type"] = evaluator_type
        if lut is not None:
            meta["label_lut"] = tuple(int(v) for v in lut)
        return self._register(name, records, meta), records

    def subset(self, source: str, n: int) -> str:
        """The first ``n`` records of dataset ``source`` under a new name, same metadata."""
        records = DatasetCatalog.get(source)[:n]
        meta = {k: v for k, v in MetadataCatalog.get(source).as_dict().items() if k != "name"}
        return self.register(f"{source}_first{n}", records, **meta)

    def remove_all(self) -> None:
        for name in self.names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        self.names.clear()


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
