"""``synth_streets``: a built-in, procedurally generated street-scene sem-seg dataset.

The demo and the tests need a dataset that exists everywhere, downloads nothing and still has the
properties Contextrast is about: confusable textures (building facades and sidewalks share one
masonry colour family and a grid pattern; overcast sky and poles are grey like facades), thin
structures (poles, tree trunks, person legs), real object boundaries, small objects, varied layouts
and ignore (255) pixels (an ego-vehicle band and small unlabelled clutter blobs).

Every image depends only on ``(seed, split, index)``, so the same seed gives byte-identical PNGs.
The files are generated on first use into ``$CONTEXTRAST_CACHE/synth_streets_v1/`` (default
``~/.cache/contextrast``): into a temporary sibling folder first, renamed into place when complete,
so a crash never leaves a half-written cache and concurrent processes cannot corrupt it.

Layout: ``images/<split>/0000.png`` (RGB) and ``labels/<split>/0000.png`` (uint8 train ids).
"""

import functools
import json
import logging
import os
import shutil
import tempfile
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .synthetic_scene import CLASSES, COLORS, IGNORE_LABEL, render_scene

__all__ = [
    "CLASSES",
    "SPLITS",
    "synth_streets_root",
    "generate_synth_streets",
    "ensure_synth_streets",
    "load_synth_streets",
    "register_synth_streets",
]

logger = logging.getLogger(__name__)

VERSION = "synth_streets_v1"
SPLITS: Dict[str, int] = {"train": 240, "val": 60}  # images per split
IMAGE_SIZE: Tuple[int, int] = (160, 240)  # (H, W)
DEFAULT_SEED = 0
_SPLIT_CODES = {"train": 0, "val": 1}  # part of each image's seed, so splits never share scenes
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]


def synth_streets_root(cache_root: Optional[str] = None, seed: int = DEFAULT_SEED) -> str:
    """Folder of the cached dataset for ``seed``.

    Args:
        cache_root: cache folder; default ``$CONTEXTRAST_CACHE`` or ``~/.cache/contextrast``.
        seed: generation seed; non-default seeds get their own folder ``synth_streets_v1_seed<N>``.
    """
    if cache_root is None:
        cache_root = os.environ.get("CONTEXTRAST_CACHE") or os.path.join(
            "~", ".cache", "contextrast"
        )
    name = VERSION if seed == DEFAULT_SEED else f"{VERSION}_seed{seed}"
    return os.path.join(os.path.abspath(os.path.expanduser(cache_root)), name)


def _manifest(seed: int, splits: Dict[str, int]) -> dict:
    return {
        "version": VERSION,
        "seed": int(seed),
        "splits": dict(splits),
        "image_size": list(IMAGE_SIZE),
        "classes": list(CLASSES),
    }


def generate_synth_streets(
    out_dir: str, seed: int = DEFAULT_SEED, splits: Optional[Dict[str, int]] = None
) -> None:
    """Write the dataset into ``out_dir`` (not atomic; see :func:`ensure_synth_streets`).

    Args:
        out_dir: destination folder, created if missing.
        seed: generation seed.
        splits: images per split; default :data:`SPLITS`. Image ``i`` of a split is the same
            whatever the number of images, since it is seeded by ``(seed, split, i)`` alone.
    """
    splits = dict(SPLITS if splits is None else splits)
    for split, count in splits.items():
        if split not in _SPLIT_CODES:
            raise ValueError(f"synth_streets: unknown split {split!r}; expected one of {SPLITS}")
        image_dir = os.path.join(out_dir, "images", split)
        label_dir = os.path.join(out_dir, "labels", split)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
            image, label = render_scene(rng, *IMAGE_SIZE)
            stem = f"{index:04d}.png"
            # cv2 writes BGR; the file itself is an ordinary RGB PNG.
            _imwrite(os.path.join(image_dir, stem), image[:, :, ::-1])
            _imwrite(os.path.join(label_dir, stem), label)
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(_manifest(seed, splits), f, indent=1, sort_keys=True)


def _imwrite(path: str, array: np.ndarray) -> None:
    if not cv2.imwrite(path, np.ascontiguousarray(array), _PNG_PARAMS):
        raise OSError(f"synth_streets: could not write {path}")


def _check_manifest(root: str, seed: int) -> None:
    path = os.path.join(root, "manifest.json")
    hint = f"delete {root} to regenerate it"
    try:
        with open(path) as f:
            found = json.load(f)
    except (OSError, ValueError) as e:
        raise RuntimeError(f"synth_streets cache {root} is incomplete ({path}: {e}); {hint}") from e
    expected = _manifest(seed, SPLITS)
    if found != expected:
        raise RuntimeError(
            f"synth_streets cache {root} was generated with other settings "
            f"({path}: {found}, expected {expected}); {hint}"
        )


def ensure_synth_streets(cache_root: Optional[str] = None, seed: int = DEFAULT_SEED) -> str:
    """Return the dataset folder, generating it first if the cache has none (a few seconds).

    Generation goes to a temporary folder next to the destination that is renamed into place
    only when complete; rename is atomic, so readers see either no dataset or a whole one. When
    several processes generate at once, the first rename wins and the others discard their copy
    (the content is identical anyway).

    Args:
        cache_root: see :func:`synth_streets_root`.
        seed: generation seed.

    Returns:
        str: the dataset root (``.../synth_streets_v1``).
    """
    root = synth_streets_root(cache_root, seed)
    if not os.path.isdir(root):
        parent = os.path.dirname(root)
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.tmp-", dir=parent)
        try:
            logger.info("Generating the synth_streets dataset (seed %d) into %s", seed, root)
            generate_synth_streets(tmp, seed=seed)
            try:
                os.rename(tmp, root)
            except OSError:
                if not os.path.isdir(root):  # not a lost race: a real failure
                    raise
                logger.info("Another process generated %s first; using its copy", root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _check_manifest(root, seed)
    return root


def load_synth_streets(
    split: str, cache_root: Optional[str] = None, seed: int = DEFAULT_SEED
) -> List[dict]:
    """Records of one split in detectron2's sem-seg format, generating the cache if needed.

    Returns:
        list[dict]: ``file_name``, ``sem_seg_file_name``, ``height``, ``width``, ``image_id``.
    """
    if split not in SPLITS:
        raise ValueError(f"synth_streets: unknown split {split!r}; expected one of {list(SPLITS)}")
    root = ensure_synth_streets(cache_root, seed)
    height, width = IMAGE_SIZE
    records = []
    for index in range(SPLITS[split]):
        stem = f"{index:04d}.png"
        record = {
            "file_name": os.path.join(root, "images", split, stem),
            "sem_seg_file_name": os.path.join(root, "labels", split, stem),
            "height": height,
            "width": width,
            "image_id": f"{split}_{index:04d}",
        }
        for key in ("file_name", "sem_seg_file_name"):
            if not os.path.isfile(record[key]):
                raise FileNotFoundError(
                    f"synth_streets: {record[key]} is missing; delete {root} to regenerate it"
                )
        records.append(record)
    return records


def register_synth_streets() -> None:
    """Register ``synth_streets_train`` / ``synth_streets_val`` (idempotent; generates lazily)."""
    registered = set(DatasetCatalog.list())
    for split in SPLITS:
        name = f"synth_streets_{split}"
        if name in registered:
            continue
        DatasetCatalog.register(name, functools.partial(load_synth_streets, split))
        MetadataCatalog.get(name).set(
            stuff_classes=list(CLASSES),
            stuff_colors=[list(c) for c in COLORS],
            ignore_label=IGNORE_LABEL,
            evaluator_type="sem_seg",
        )


register_synth_streets()
