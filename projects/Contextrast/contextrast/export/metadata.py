"""The preprocessing and label contract of an exported model, stored in the ONNX file.

An ``.onnx`` file from ``deploy/export_onnx.py`` carries in its ``metadata_props`` everything
needed to feed it and to read its output without the training config: class names and colours,
the input channel order and value range, the test-time resize, the ignore label, the training
resolution and a hash of the Contextrast section of the config (which training produced it).
``tools/predict.py --onnx`` and ``deploy/evaluate.py`` read it with :func:`read_metadata`.
"""

import dataclasses
import hashlib
import json
from typing import Dict, List, Optional, Tuple

from detectron2.data import MetadataCatalog

from ..evaluation.visualization import default_palette
from .onnx_io import load_onnx

__all__ = ["DeployMetadata", "metadata_from_config", "write_metadata", "read_metadata"]

# Prefix of every key this project writes into metadata_props (other tools may add their own).
PREFIX = "contextrast."


@dataclasses.dataclass
class DeployMetadata:
    """What a deployed model needs from its training config.

    Attributes:
        class_names: one name per output channel (K).
        palette: one RGB triple (0-255) per class.
        input_format: channel order of the ``images`` input, "RGB" or "BGR".
        input_range: value range of the input, "0-255" (normalisation is inside the graph).
        ignore_label: label value of unlabelled pixels in the dataset's ground truth.
        min_size_test / max_size_test: detectron2's test resize (ResizeShortestEdge; 0 = none).
        training_resolution: (height, width) of the training crop.
        output_kind: "logits" (B, K, H, W) or "labels" (B, H, W).
        precision: "fp32", "fp16" (inputs/outputs stay float32) or "int8" (QDQ).
        config_hash: sha256 of the config's MODEL.CONTEXTRAST section (16 hex digits).
        contextrast_enabled: whether the checkpoint was trained with Contextrast.
        dataset: the registered dataset the class names come from ("" when none).
    """

    class_names: List[str]
    palette: List[Tuple[int, int, int]]
    input_format: str
    input_range: str
    ignore_label: int
    min_size_test: int
    max_size_test: int
    training_resolution: Tuple[int, int]
    output_kind: str
    precision: str
    config_hash: str
    contextrast_enabled: bool
    dataset: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _config_hash(cfg) -> str:
    # The Contextrast section only: it identifies the training recipe, not the paths or devices.
    text = json.dumps(json.loads(json.dumps(cfg.MODEL.CONTEXTRAST)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def metadata_from_config(
    cfg, *, output_kind: str = "logits", precision: str = "fp32"
) -> DeployMetadata:
    """The contract of ``cfg``'s network; class names and colours from its first test (else
    training) dataset's ``MetadataCatalog`` entry, generic names when it has none."""
    num_classes = cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    names = list(cfg.DATASETS.TEST) + list(cfg.DATASETS.TRAIN)
    dataset, classes, colors = "", None, None
    for name in names:
        meta = MetadataCatalog.get(name)
        if len(meta.get("stuff_classes", [])) == num_classes:
            dataset, classes = name, list(meta.stuff_classes)
            colors = meta.get("stuff_colors", None)
            break
    if classes is None:
        classes = [f"class_{i}" for i in range(num_classes)]
    if colors is None:
        colors = default_palette(num_classes)
    crop = (0, 0)
    if cfg.INPUT.CROP.ENABLED and cfg.INPUT.CROP.TYPE == "absolute":
        crop = (int(cfg.INPUT.CROP.SIZE[0]), int(cfg.INPUT.CROP.SIZE[1]))
    return DeployMetadata(
        class_names=classes,
        palette=[tuple(int(v) for v in c) for c in colors],
        input_format=cfg.INPUT.FORMAT,
        input_range="0-255",
        ignore_label=int(cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE),
        min_size_test=int(cfg.INPUT.MIN_SIZE_TEST),
        max_size_test=int(cfg.INPUT.MAX_SIZE_TEST),
        training_resolution=crop,
        output_kind=output_kind,
        precision=precision,
        config_hash=_config_hash(cfg),
        contextrast_enabled=bool(cfg.MODEL.CONTEXTRAST.ENABLED),
        dataset=dataset,
    )


def write_metadata(path: str, meta: DeployMetadata, *, model=None) -> None:
    """Store ``meta`` in the ``metadata_props`` of ``path`` (or of the loaded ``model``, which
    is then saved to ``path``); existing keys of this project are replaced."""
    import onnx

    model = onnx.load(path) if model is None else model
    keep = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in dataclasses.asdict(meta).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = PREFIX + key, json.dumps(value)
    onnx.save(model, path)


def read_metadata(path: str, *, overrides: Optional[Dict[str, object]] = None) -> DeployMetadata:
    """The contract stored in ``path`` by :func:`write_metadata`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OnnxModelError: ``path`` is not a readable ONNX model (e.g. a truncated file).
        ValueError: naming the file and the missing or malformed keys (e.g. an ONNX file that
            was not exported by ``deploy/export_onnx.py``).
    """
    model = load_onnx(path, load_external_data=False)
    props = {
        p.key[len(PREFIX) :]: p.value for p in model.metadata_props if p.key.startswith(PREFIX)
    }
    fields = [f.name for f in dataclasses.fields(DeployMetadata)]
    missing = [f for f in fields if f not in props]
    if missing:
        raise ValueError(
            f"{path}: ONNX metadata_props lack {', '.join(PREFIX + k for k in missing)}; export "
            "the model with deploy/export_onnx.py (it writes the preprocessing contract)"
        )
    try:
        values = {f: json.loads(props[f]) for f in fields}
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed ONNX metadata value ({e})") from e
    values.update(overrides or {})
    values["palette"] = [tuple(c) for c in values["palette"]]
    values["training_resolution"] = tuple(values["training_resolution"])
    meta = DeployMetadata(**values)
    if len(meta.palette) != meta.num_classes or meta.input_format not in ("RGB", "BGR"):
        raise ValueError(
            f"{path}: inconsistent metadata: {meta.num_classes} class names, {len(meta.palette)} "
            f"colours, input_format {meta.input_format!r}"
        )
    return meta
