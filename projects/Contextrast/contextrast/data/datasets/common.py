"""Shared pieces of dataset registration: the data root, file pairing, label tables, errors.

Every loader here returns detectron2's sem-seg records (``file_name``, ``sem_seg_file_name``,
``height``, ``width``) and fails with a :class:`FileNotFoundError` that names
``$DETECTRON2_DATASETS``, the offending path and the tree that was expected, so a user who
mistyped a root or forgot a preparation step learns what to fix from the message alone.
"""

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

IGNORE_LABEL = 255
DATASETS_ENV = "DETECTRON2_DATASETS"


def datasets_root() -> str:
    """Root of all datasets: ``$DETECTRON2_DATASETS`` or ``datasets`` (detectron2's convention).

    Read when the registration runs (on ``import contextrast.data``), exactly like
    ``detectron2/data/datasets/builtin.py``, so the builtin datasets and ours share one root.
    """
    return os.path.expanduser(os.getenv(DATASETS_ENV, "datasets"))


def tree_error(dataset: str, problem: str, path: str, root: str, tree: str) -> FileNotFoundError:
    """Build the error raised for a missing or incomplete dataset tree.

    Args:
        dataset: registered dataset name, e.g. ``"camvid_train"``.
        problem: what is wrong, e.g. ``"split folder not found"``.
        path: the path that was looked for.
        root: the datasets root the registration used.
        tree: the expected layout under the root (a few indented lines).

    Returns:
        A :class:`FileNotFoundError` ready to raise.
    """
    shown = f"'{path}'" if os.path.isabs(path) else f"'{path}' (= '{os.path.abspath(path)}')"
    return FileNotFoundError(
        f"{dataset}: {problem}: {shown}.\n"
        f"Datasets are read from ${DATASETS_ENV}='{root}' (default 'datasets', read at import of "
        f"contextrast.data). Expected tree:\n{tree}\nSee datasets/README.md."
    )


def label_lut(mapping: Dict[int, int], void: Sequence[int]) -> Tuple[int, ...]:
    """A 256-entry ``label_lut`` (raw label value -> train id).

    Args:
        mapping: raw value -> train id for every value that is a class.
        void: raw values the release defines as void / unlabelled: mapped to 255 (ignore).
            Every other raw value cannot occur in a correct file: -1, an error when read.

    Returns:
        Tuple of 256 ints, the metadata format described in ``docs/architecture.md``.
    """
    lut = np.full(256, -1, dtype=np.int64)
    for raw in void:
        if not 0 <= raw < 256 or raw in mapping:
            raise ValueError(f"label_lut void value {raw} is outside 0..255 or also a class")
        lut[raw] = IGNORE_LABEL
    for raw, train_id in mapping.items():
        if not (0 <= raw < 256 and 0 <= train_id <= IGNORE_LABEL):
            raise ValueError(f"label_lut entry {raw} -> {train_id} is outside 0..255")
        lut[raw] = train_id
    return tuple(int(v) for v in lut)


def voc_colormap(n: int) -> List[List[int]]:
    """The PASCAL VOC colour map (bit-interleaved RGB), a deterministic palette of ``n`` colours.

    Entry 0 is black (VOC's background), so callers that want only visible colours skip it.
    """
    ids = np.arange(n, dtype=np.int64)
    rgb = np.zeros((n, 3), dtype=np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            # Bit `channel` of each 3-bit group of the id lands in bit `shift` of that channel.
            bits = (ids >> (3 * (7 - shift) + channel)) & 1
            rgb[:, channel] |= bits << shift
    return rgb.tolist()


def _files_with_ext(folder: str, ext: str) -> Dict[str, str]:
    """Map file stem -> file name for the files of ``folder`` ending with ``ext``."""
    return {name[: -len(ext)]: name for name in os.listdir(folder) if name.endswith(ext)}


def load_pairs(
    dataset: str,
    root: str,
    tree: str,
    *,
    image_dir: str,
    label_dir: str,
    image_ext: str,
    label_ext: str,
    index_by: str = "image",
    expected_count: Optional[int] = None,
) -> List[Dict]:
    """Pair images with label files by file stem and return detectron2 sem-seg records.

    Args:
        dataset: registered name, used in messages.
        root: datasets root the registration used (for messages).
        tree: expected layout (for messages).
        image_dir, label_dir: folders holding the images and the label PNGs of one split.
        image_ext, label_ext: file-name endings, e.g. ``".png"``, ``".jpg"``.
        index_by: ``"image"``: every image of ``image_dir`` is a record and needs its label
            (raw datasets such as CamVid); ``"label"``: every label file is a record and needs
            its image (converted datasets whose image folder holds several splits).
        expected_count: official split size; a different count is logged as a warning because
            it usually means an interrupted download or conversion.

    Returns:
        Records sorted by file name with ``file_name``, ``sem_seg_file_name``, ``height`` and
        ``width`` (read from the image header, which does not decode the pixels).

    Raises:
        FileNotFoundError: missing root or split folder, empty split, or a record whose partner
            file is missing (the message names both paths).
    """
    if index_by not in ("image", "label"):
        raise ValueError(f"index_by must be 'image' or 'label', got {index_by!r}")
    if not os.path.isdir(root):
        raise tree_error(dataset, "datasets root not found", root, root, tree)
    for folder in (image_dir, label_dir):
        if not os.path.isdir(folder):
            raise tree_error(dataset, "split folder not found", folder, root, tree)

    images = _files_with_ext(image_dir, image_ext)
    labels = _files_with_ext(label_dir, label_ext)
    if index_by == "image":
        keys, primary_dir, primary_ext = sorted(images), image_dir, image_ext
    else:
        keys, primary_dir, primary_ext = sorted(labels), label_dir, label_ext
    if not keys:
        raise tree_error(
            dataset, f"empty split: no '*{primary_ext}' files in", primary_dir, root, tree
        )

    records = []
    for key in keys:
        image_file = os.path.join(image_dir, images.get(key, key + image_ext))
        label_file = os.path.join(label_dir, labels.get(key, key + label_ext))
        if key not in labels:
            problem = f"image '{image_file}' has no label file; expected"
            raise tree_error(dataset, problem, label_file, root, tree)
        if key not in images:
            problem = f"label file '{label_file}' has no image; expected"
            raise tree_error(dataset, problem, image_file, root, tree)
        with Image.open(image_file) as img:
            width, height = img.size
        records.append(
            {
                "file_name": image_file,
                "sem_seg_file_name": label_file,
                "height": height,
                "width": width,
            }
        )
    if index_by == "image" and len(labels) > len(records):
        logger.warning(
            "%s: %d label files in '%s' have no image; they are not used",
            dataset,
            len(labels) - len(records),
            label_dir,
        )
    if expected_count is not None and len(records) != expected_count:
        logger.warning(
            "%s: %d records, the official split has %d (incomplete download or conversion?)",
            dataset,
            len(records),
            expected_count,
        )
    logger.info("%s: %d records from '%s'", dataset, len(records), primary_dir)
    return records
