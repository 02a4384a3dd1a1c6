"""Parity of an exported graph with the PyTorch network: inputs, comparison, pass/fail, table.

The logits of two float32 implementations of one network differ by rounding that grows with the
magnitude of the values (and depends on the CPU's kernels), so a logits comparison passes when
``max|output - reference| <= atol + rtol * max|reference|`` (:func:`within_tolerance`); labels
pass when enough pixels agree.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

from .model import InferenceWrapper
from .onnx_io import INPUT_NAME, load_images, ort_session, random_images, torch_forward

__all__ = [
    "compare_outputs",
    "within_tolerance",
    "parity_inputs",
    "check_parity",
    "format_parity",
]


def compare_outputs(reference: np.ndarray, output: np.ndarray) -> Dict[str, float]:
    """Parity of one runtime against the PyTorch reference.

    Args:
        reference, output: both (B, K, H, W) logits or both (B, H, W) labels.

    Returns:
        For logits: ``max_abs_diff``, ``max_abs_logit`` (of the reference) and
        ``argmax_agreement`` (fraction of pixels with the same argmax); for labels:
        ``label_agreement``.
    """
    if reference.shape != output.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs {output.shape}")
    if reference.ndim == 3:
        return {"label_agreement": float(np.mean(reference == output))}
    diff = np.abs(reference.astype(np.float64) - output.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        "max_abs_logit": float(np.abs(reference).max()),
        "argmax_agreement": float(np.mean(reference.argmax(1) == output.argmax(1))),
    }


def within_tolerance(stats: Dict[str, float], *, atol: float, rtol: float) -> bool:
    """Whether logits statistics of :func:`compare_outputs` pass:
    ``max_abs_diff <= atol + rtol * max_abs_logit``."""
    return stats["max_abs_diff"] <= atol + rtol * stats["max_abs_logit"]


def parity_inputs(
    *,
    input_format: str,
    image_paths: Sequence[str],
    height: int,
    width: int,
    batch: int,
    dynamic: bool,
    seed: int,
) -> List[np.ndarray]:
    """The arrays on which ONNX Runtime is compared with PyTorch.

    Random images: the export shape and, for a dynamic graph, a second odd shape with another
    batch size (exercises the in-graph padding). Image files: each at its own size for a dynamic
    graph, else resized to the export size and grouped into batches of ``batch``.
    """
    if image_paths:
        arrays = load_images(image_paths, input_format, None if dynamic else (height, width))
        if dynamic or batch == 1:
            return arrays
        if len(arrays) < batch:
            raise ValueError(f"--batch {batch} with a static graph needs >= {batch} --images")
        groups = range(0, len(arrays) - batch + 1, batch)
        return [np.concatenate(arrays[i : i + batch]) for i in groups]
    inputs = [random_images(batch, height, width, seed)]
    if dynamic:
        inputs.append(
            random_images(batch + 1, height - height // 4 + 1, width + width // 4 + 3, seed + 1)
        )
    return inputs


def check_parity(
    wrapper: InferenceWrapper,
    onnx_path: str,
    inputs: Sequence[np.ndarray],
    *,
    atol: float,
    rtol: float,
    min_agreement: float,
    device: str = "cpu",
) -> Tuple[List[Dict[str, object]], bool]:
    """ONNX Runtime (CPU provider) vs PyTorch (on ``device``) on each input.

    A logits row passes by :func:`within_tolerance`; a labels row when
    ``label_agreement >= min_agreement``.

    Returns:
        (one dict per input with its shape, the statistics of :func:`compare_outputs` and
        ``ok``; whether every row passed).
    """
    session = ort_session(onnx_path)
    rows = []
    for images in inputs:
        stats = compare_outputs(
            torch_forward(wrapper, images, device), session.run(None, {INPUT_NAME: images})[0]
        )
        if "max_abs_diff" in stats:
            ok = within_tolerance(stats, atol=atol, rtol=rtol)
        else:
            ok = stats["label_agreement"] >= min_agreement
        rows.append({"input_shape": list(images.shape), **stats, "ok": bool(ok)})
    return rows, all(r["ok"] for r in rows)


def format_parity(rows: Sequence[Dict[str, object]]) -> str:
    """Markdown table of :func:`check_parity` rows."""
    keys = [k for k in rows[0] if k not in ("input_shape", "ok")]
    lines = [
        "| input | " + " | ".join(keys) + " | ok |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for row in rows:
        shape = "x".join(str(d) for d in row["input_shape"])
        values = " | ".join(f"{row[k]:.3g}" for k in keys)
        lines.append(f"| {shape} | {values} | {'yes' if row['ok'] else 'NO'} |")
    return "\n".join(lines)
