"""Label files and label conventions of sem-seg datasets.

Label files are read as stored (the raw index of a palette PNG, not its colour) and mapped to
train ids with the dataset metadata's optional ``label_lut`` (256 ints, raw value -> train id,
255 = ignore, -1 = a value the dataset's release never stores), so raw files never need
rewriting. Ignore (255) is for values the release defines as void (CamVid's 11); -1 marks
values that cannot occur in a correct file (CamVid's 12..255: the 32-class CamVid labels put in
place of the 11-class ones, a corrupted or wrongly converted file): a file holding one stops
with an error naming the file and the values, instead of training on mostly ignored pixels.
The mapper (:mod:`.mapper`) and the evaluator (:mod:`contextrast.evaluation.sem_seg_evaluation`)
both load labels with :func:`load_sem_seg_label`, so training and evaluation agree on what each
raw value means.
"""

from typing import Optional, Sequence, Tuple

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.utils.file_io import PathManager
from PIL import Image

__all__ = [
    "DECODE_ERRORS",
    "as_label_lut",
    "check_model_matches_dataset",
    "label_spec_from_metadata",
    "load_sem_seg_label",
]

# What PIL raises for missing, truncated or garbled files (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)
# label_lut entry of a raw value that no correct label file of the dataset holds.
UNDEFINED_RAW = -1


def as_label_lut(lut: Optional[Sequence[int]], source: str) -> Optional[np.ndarray]:
    """Check a label look-up table and return it as a (256,) int16 array (None stays None).

    Args:
        lut: 256 ints in [-1, 255], raw label value -> train id (255 = ignore, -1 = a raw value
            that cannot occur in a correct file), or None.
        source: the table's name in the error message.

    Raises:
        ValueError: naming ``source``, for any other shape, type or range.
    """
    if lut is None:
        return None
    arr = np.asarray(lut)
    if (
        arr.shape != (256,)
        or not np.issubdtype(arr.dtype, np.integer)
        or arr.min() < UNDEFINED_RAW
        or arr.max() > 255
    ):
        raise ValueError(
            f"{source} must be 256 ints in [-1, 255] (raw value -> train id, 255 = ignore, "
            f"-1 = cannot occur), got shape {arr.shape}, dtype {arr.dtype}"
        )
    return arr.astype(np.int16)


def _value_ranges(values: np.ndarray) -> str:
    """``[0, 1, 2, 5, 11]`` -> ``"0..2, 5, 11"``."""
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}..{v}")
            start = None
    return ", ".join(parts)


def label_spec_from_metadata(dataset_name: str) -> Tuple[int, int, Optional[np.ndarray]]:
    """Read and check the label conventions of a registered dataset.

    Returns:
        num_classes: ``len(stuff_classes)``.
        ignore_label: ``ignore_label`` (default 255).
        label_lut: (256,) uint8 array, raw value -> train id, or None when the files hold train ids.
    """
    meta = MetadataCatalog.get(dataset_name)
    classes = meta.get("stuff_classes")
    if not classes:
        raise ValueError(f"dataset {dataset_name!r}: metadata has no 'stuff_classes'")
    lut = as_label_lut(meta.get("label_lut"), f"dataset {dataset_name!r}: metadata 'label_lut'")
    return len(classes), int(meta.get("ignore_label", 255)), lut


def check_model_matches_dataset(cfg, dataset_name: str, num_classes: int, ignore_label: int):
    """Raise ValueError when ``MODEL.SEM_SEG_HEAD`` disagrees with the dataset's labels."""
    head = cfg.MODEL.SEM_SEG_HEAD
    if head.NUM_CLASSES != num_classes:
        raise ValueError(
            f"MODEL.SEM_SEG_HEAD.NUM_CLASSES={head.NUM_CLASSES} differs from the {num_classes} "
            f"stuff_classes of dataset {dataset_name!r}"
        )
    if head.IGNORE_VALUE != ignore_label:
        raise ValueError(
            f"MODEL.SEM_SEG_HEAD.IGNORE_VALUE={head.IGNORE_VALUE} differs from the ignore_label "
            f"{ignore_label} of dataset {dataset_name!r}"
        )


def _read_label_array(file_name: str) -> np.ndarray:
    try:
        with PathManager.open(file_name, "rb") as f:
            image = Image.open(f)
            image.load()  # decode now, so truncation is reported here with the file name
    except FileNotFoundError as e:
        raise FileNotFoundError(f"label file not found: {file_name}") from e
    except DECODE_ERRORS as e:
        raise ValueError(
            f"cannot decode label file {file_name} (corrupt or truncated?): {e}"
        ) from e
    # np.asarray keeps the stored values: a palette ("P") PNG yields its indices, not colours.
    label = np.asarray(image)
    if label.ndim != 2:
        raise ValueError(
            f"label file {file_name} has mode {image.mode} with shape {label.shape}; "
            "expected a single-channel label map (L, P or I;16)"
        )
    return label


def load_sem_seg_label(
    file_name: str,
    *,
    num_classes: int,
    ignore_label: int = 255,
    label_lut: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Read a label file, map it through ``label_lut`` and check every value.

    Args:
        file_name: label image path (anything ``PathManager`` opens).
        num_classes: valid train ids are ``[0, num_classes)``.
        ignore_label: the one other allowed value.
        label_lut: optional (256,) int array from :func:`as_label_lut`, raw value -> train id.

    Returns:
        (H, W) uint8 train ids in ``[0, num_classes)`` or ``ignore_label``.

    Raises:
        FileNotFoundError / ValueError naming ``file_name`` for a missing or undecodable file, a
        multi-channel image, raw values a 256-entry LUT cannot map or marks as impossible (-1),
        or invalid train ids.
    """
    raw = _read_label_array(file_name)
    if label_lut is not None:
        if raw.dtype != np.uint8:
            too_big = np.unique(raw[(raw < 0) | (raw > 255)])
            if too_big.size:
                raise ValueError(
                    f"label file {file_name}: raw values {too_big[:10].tolist()} are outside "
                    "[0, 255], which label_lut cannot map"
                )
        raw_present = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
        undefined = raw_present[label_lut[raw_present] == UNDEFINED_RAW]
        if undefined.size:
            defined = np.flatnonzero(label_lut != UNDEFINED_RAW)
            raise ValueError(
                f"label file {file_name}: raw values {undefined[:10].tolist()} cannot occur in "
                f"this dataset's label files, whose values are {_value_ranges(defined)} "
                "(label_lut). A wrong release (e.g. another class set) or a corrupted file?"
            )
        label = label_lut.astype(np.uint8)[raw]  # -1 entries never reach here
    else:
        label = raw
    if label.dtype == np.uint8:  # bincount is much cheaper than unique on large maps
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    else:
        present = np.unique(label)
    bad = present[((present < 0) | (present >= num_classes)) & (present != ignore_label)]
    if bad.size:
        detail = ""
        if label_lut is not None:
            raw_bad = np.unique(raw[np.isin(label, bad)])
            detail = f" (mapped by label_lut from raw values {raw_bad[:10].tolist()})"
        raise ValueError(
            f"label file {file_name}: values {bad[:10].tolist()}{detail} are neither train ids "
            f"in [0, {num_classes}) nor the ignore label {ignore_label}"
        )
    return label.astype(np.uint8, copy=False)
