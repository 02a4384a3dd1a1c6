"""Conversion of MATLAB label maps (``.mat``) into uint8 train-id PNGs, for the prepare scripts.

PASCAL-Context and COCO-Stuff-10k release their labels as ``.mat`` files holding one integer
map per image in the dataset's own id space. ``datasets/prepare_*.py`` turn them into the PNGs
the loaders read, through a lookup table built here: one vectorised indexing per image.
"""

import functools
import logging
import multiprocessing
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import scipy.io
from PIL import Image

from .common import IGNORE_LABEL

logger = logging.getLogger(__name__)


def mat_lut(mapping: Dict[int, int], max_value: int) -> np.ndarray:
    """Lookup table raw id -> train id for raw values ``0..max_value``; unmapped ids -> 255.

    Args:
        mapping: raw id -> train id (< 255) for every raw id that is a training class.
        max_value: largest raw id the release can contain; larger values are an error.

    Returns:
        ``uint8`` array of length ``max_value + 1``.
    """
    lut = np.full(max_value + 1, IGNORE_LABEL, dtype=np.uint8)
    raw = np.fromiter(mapping.keys(), dtype=np.int64)
    train = np.fromiter(mapping.values(), dtype=np.int64)
    if raw.size and (
        raw.min() < 0 or raw.max() > max_value or train.min() < 0 or train.max() > 254
    ):
        raise ValueError(f"mapping has raw ids outside 0..{max_value} or train ids outside 0..254")
    lut[raw] = train
    return lut


def read_id_list(list_file: str) -> List[str]:
    """Read a split list (one image id per line; blank lines and file extensions ignored).

    Raises:
        FileNotFoundError: when ``list_file`` does not exist.
        ValueError: when it lists no id.
    """
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"split list not found: '{list_file}'")
    with open(list_file) as f:
        ids = [os.path.splitext(os.path.basename(line.strip()))[0] for line in f if line.strip()]
    if not ids:
        raise ValueError(f"split list '{list_file}' lists no image")
    return ids


def convert_mat_label(mat_file: str, png_file: str, key: str, lut: np.ndarray) -> Tuple[int, int]:
    """Convert one ``.mat`` label map to a train-id PNG (written atomically).

    Args:
        mat_file: input file; ``key`` names its 2-D integer label map.
        png_file: output file; its folder must exist.
        key: variable name in the ``.mat`` file (``"LabelMap"``, ``"S"``).
        lut: raw id -> train id table from :func:`mat_lut`.

    Returns:
        ``(height, width)`` of the label map.

    Raises:
        FileNotFoundError: missing ``mat_file``.
        ValueError: missing key, non-2-D or non-integer map, or ids beyond the table.
    """
    if not os.path.isfile(mat_file):
        raise FileNotFoundError(f"annotation not found: '{mat_file}'")
    content = scipy.io.loadmat(mat_file)
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise ValueError(f"'{mat_file}' has no variable '{key}' (found {found})")
    raw = np.asarray(content[key])
    if raw.ndim != 2 or raw.size == 0:
        raise ValueError(f"'{mat_file}': '{key}' must be a non-empty 2-D map, got {raw.shape}")
    if not np.issubdtype(raw.dtype, np.integer):
        # Some exports store ids as doubles; accept them only when they are whole numbers.
        if not np.array_equal(raw, np.round(raw)):
            raise ValueError(f"'{mat_file}': '{key}' holds non-integer values ({raw.dtype})")
        raw = raw.astype(np.int64)
    if raw.min() < 0 or raw.max() >= len(lut):
        span = f"{raw.min()}..{raw.max()}"
        raise ValueError(f"'{mat_file}': '{key}' values span {span}, expected 0..{len(lut) - 1}")
    tmp_file = png_file + ".tmp"
    Image.fromarray(lut[raw]).save(tmp_file, format="PNG")
    # Rename last, so an interrupted run never leaves a truncated PNG under the final name.
    os.replace(tmp_file, png_file)
    return raw.shape


def convert_mat_labels(
    pairs: Sequence[Tuple[str, str]], key: str, lut: np.ndarray, workers: int = 1
) -> int:
    """Convert many ``(mat_file, png_file)`` pairs, in ``workers`` processes.

    Returns:
        Number of files written.
    """
    for _, png_file in pairs:
        os.makedirs(os.path.dirname(png_file), exist_ok=True)
    convert = functools.partial(_convert_pair, key=key, lut=lut)
    done = 0
    if workers <= 1:
        for pair in pairs:
            convert(pair)
            done += 1
            if done % 1000 == 0:
                logger.info("converted %d / %d", done, len(pairs))
        return done
    with multiprocessing.Pool(workers) as pool:
        for _ in pool.imap_unordered(convert, pairs, chunksize=16):
            done += 1
            if done % 1000 == 0:
                logger.info("converted %d / %d", done, len(pairs))
    return done


def _convert_pair(pair: Tuple[str, str], key: str, lut: np.ndarray) -> Tuple[int, int]:
    return convert_mat_label(pair[0], pair[1], key, lut)
