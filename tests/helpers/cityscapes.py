"""A small Cityscapes tree made the way the release is: polygon annotations, from which
cityscapesScripts' own converters draw ``*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``
(the files the official evaluation reads) and ``csCreateTrainIdLabelImgs`` the
``*_gtFine_labelTrainIds.png`` that training reads. Needs the ``[cityscapes]`` extra
(``cityscapesscripts``); tests using it call ``pytest.importorskip("cityscapesscripts")`` first.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from PIL import Image

__all__ = ["CITYSCAPES_H", "CITYSCAPES_W", "build_cityscapes_tree", "eval_label_ids"]

# Image size of the generated frames (the release's 1024x2048, scaled down 16x).
CITYSCAPES_H, CITYSCAPES_W = 64, 128


def _box(x0: float, y0: float, x1: float, y1: float) -> List[List[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _street_objects(rng: np.random.RandomState) -> List[dict]:
    """Polygons of one street scene, drawn in this order (later objects cover earlier ones):
    stuff classes, then instances of two instance classes, then the ego vehicle (void)."""
    h, w = CITYSCAPES_H, CITYSCAPES_W
    horizon = h * rng.uniform(0.35, 0.5)
    kerb = h * rng.uniform(0.7, 0.8)
    objects = [
        ("sky", _box(0, 0, w, horizon)),
        ("building", _box(0, h * 0.1, w * rng.uniform(0.3, 0.5), kerb)),
        ("vegetation", _box(w * rng.uniform(0.6, 0.75), h * 0.2, w, kerb)),
        ("sidewalk", _box(0, horizon, w, kerb)),
        ("road", _box(0, kerb, w, h)),
    ]
    for _ in range(2):  # two cars on the road
        x = w * rng.uniform(0.05, 0.7)
        objects.append(("car", _box(x, kerb - 8, x + w * 0.2, kerb + 6)))
    x = w * rng.uniform(0.4, 0.6)  # a pedestrian on the sidewalk
    objects.append(("person", _box(x, horizon, x + 6, kerb)))
    objects.append(("ego vehicle", _box(0, h - 4, w, h)))
    return [{"label": label, "polygon": polygon} for label, polygon in objects]


def _placeholder_objects() -> List[dict]:
    """The released test annotations: only what camera calibration gives (the ego vehicle)."""
    return [
        {"label": "ego vehicle", "polygon": _box(0, CITYSCAPES_H - 4, CITYSCAPES_W, CITYSCAPES_H)}
    ]


def _write_frame(city_dir_img: Path, gt_dir: Path, stem: str, objects, seed: int) -> None:
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.helpers.labels import id2label
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    gt_dir.mkdir(parents=True, exist_ok=True)
    city_dir_img.mkdir(parents=True, exist_ok=True)
    polygons = gt_dir / f"{stem}_gtFine_polygons.json"
    polygons.write_text(
        json.dumps({"imgHeight": CITYSCAPES_H, "imgWidth": CITYSCAPES_W, "objects": objects})
    )
    label_ids = gt_dir / f"{stem}_gtFine_labelIds.png"
    json2labelImg(str(polygons), str(label_ids), "ids")
    # json2instanceImg saves a 32-bit "I" image, which the pinned Pillow no longer writes as PNG;
    # the release's instanceIds files are 16-bit PNGs, written here from the same drawing.
    annotation = Annotation()
    annotation.fromJsonFile(str(polygons))
    instances = np.asarray(createInstanceImage(annotation, "ids"), dtype=np.uint16)
    Image.fromarray(instances).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    # The image: each class in its Cityscapes colour plus noise, so the network has a signal.
    ids = np.asarray(Image.open(label_ids))
    palette = np.zeros((256, 3), dtype=np.float32)
    for label_id, label in id2label.items():
        if label_id >= 0:
            palette[label_id] = label.color
    noise = np.random.RandomState(seed).normal(0, 20, ids.shape + (3,))
    pixels = np.clip(palette[ids] + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(city_dir_img / f"{stem}_leftImg8bit.png")


def build_cityscapes_tree(root: Path, counts: Dict[str, int], seed: int = 0) -> Path:
    """Write ``root/cityscapes`` in the release's layout and convert it as its README says.

    Args:
        root: the datasets root (``$DETECTRON2_DATASETS``).
        counts: images per split, e.g. ``{"train": 4, "val": 2, "test": 2}``; the ``test``
            split gets placeholder annotations, like the release's.
        seed: seed of the scene layouts and the image noise.

    Returns:
        ``root/cityscapes``.
    """
    base = Path(root) / "cityscapes"
    rng = np.random.RandomState(seed)
    for split, count in counts.items():
        city = {"train": "aachen", "val": "frankfurt", "test": "berlin"}.get(split, split)
        for i in range(count):
            stem = f"{city}_{i:06d}_000019"
            objects = _placeholder_objects() if split == "test" else _street_objects(rng)
            _write_frame(
                base / "leftImg8bit" / split / city,
                base / "gtFine" / split / city,
                stem,
                objects,
                seed=seed * 1000 + i,
            )
    # The README's preparation step, run as the console script it documents.
    script = os.path.join(os.path.dirname(sys.executable), "csCreateTrainIdLabelImgs")
    env = dict(os.environ, CITYSCAPES_DATASET=str(base))
    subprocess.run([script], env=env, check=True, capture_output=True, timeout=120)
    return base


def eval_label_ids() -> Sequence[int]:
    """The Cityscapes label id of each train id 0..18 (what the official evaluator writes)."""
    from cityscapesscripts.helpers.labels import trainId2label

    return [trainId2label[train_id].id for train_id in range(19)]
