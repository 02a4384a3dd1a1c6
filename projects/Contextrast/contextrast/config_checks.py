"""What each ``MODEL.CONTEXTRAST.*`` key accepts: the one place that checks these values.

:func:`check_contextrast_config` runs in :func:`contextrast.config.load_config`, so every entry
point refuses a bad value before it writes anything to ``OUTPUT_DIR`` (a bad override on
``--resume`` leaves the run's ``config.yaml`` and ``log.txt`` as they were), whether or not
``ENABLED`` is set (a baseline config that is saved with a bad value would fail once Contextrast is
switched on). It also lists the settings that make the contrastive term a no-op
(:func:`contextrast_config_warnings`). The classes that take these values as arguments
(:class:`~contextrast.modeling.ContextrastCriterion`, ``ContrastGradientGate``, the segmentor, the
projection heads) check them with :func:`check_contextrast_values`: the same rules.

Whether ``IN_FEATURES`` are features the network produces, in its order, needs the built network:
the segmentor checks that when it is built.
"""

import functools
import math
from typing import Any, Callable, Dict, List, Mapping, Optional

__all__ = [
    "ERROR_MAP_READINGS",
    "FEATURE_SOURCES",
    "LOSS_AVERAGES",
    "SAMPLING_CAPS",
    "TIE_BREAKS",
    "check_contextrast_config",
    "check_contextrast_values",
    "contextrast_config_warnings",
    "contextrast_values",
]

PREFIX = "MODEL.CONTEXTRAST."
# The values of the string keys, defined here and imported by the modules that implement them
# (the package's subpackages import downwards: modeling imports this module, not the reverse).
FEATURE_SOURCES = ("backbone", "head")  # FEATURE_SOURCE
LOSS_AVERAGES = ("present", "valid")  # LOSS_AVERAGE
SAMPLING_CAPS = ("global", "per_process")  # SAMPLING_CAPS
ERROR_MAP_READINGS = ("fp", "fn")  # BANE.ERROR_MAP
TIE_BREAKS = ("random", "raster")  # BANE.TIE_BREAK
# A rule returns None for a good value, else what it expected ("a positive integer").
Rule = Callable[[Any], Optional[str]]


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _boolean(x) -> Optional[str]:
    return None if isinstance(x, bool) else "True or False"


def _integer_at_least(low: int) -> Rule:
    expected = "a positive integer" if low == 1 else f"an integer >= {low}"
    return lambda x: None if _is_int(x) and x >= low else expected


def _non_negative(x) -> Optional[str]:  # False for NaN and Inf too
    return None if _is_number(x) and 0 <= x < math.inf else "a finite number >= 0"


def _positive(x) -> Optional[str]:
    return None if _is_number(x) and 0 < x < math.inf else "a finite number > 0"


def _fraction(x) -> Optional[str]:
    return None if _is_number(x) and 0 < x <= 1 else "a value in (0, 1]"


def _one_of(options) -> Rule:
    return lambda x: None if x in options else f"one of {tuple(options)}"


def _name(x) -> Optional[str]:
    return None if isinstance(x, str) and x else "a non-empty name"


def _feature_names(x) -> Optional[str]:
    if not isinstance(x, (list, tuple)) or not x or not all(_name(n) is None for n in x):
        return "at least one feature name"
    if len(set(x)) != len(x):
        return "distinct feature names"
    return None


def _weights(x) -> Optional[str]:
    ok = isinstance(x, (list, tuple)) and all(_non_negative(w) is None for w in x)
    return None if ok else "a list of finite non-negative weights"


@functools.lru_cache(maxsize=None)
def _rules() -> Dict[str, Rule]:
    """Key (under ``MODEL.CONTEXTRAST.``) -> rule."""
    return {
        "ENABLED": _boolean,
        "IN_FEATURES": _feature_names,
        "PROJ_HEAD_NAME": _name,
        "PROJ_DIM": _integer_at_least(1),
        "TEMPERATURE": _positive,
        "LAYER_WEIGHTS": _weights,
        "LOSS_WEIGHT": _non_negative,
        "WARMUP_ITERS": _integer_at_least(0),
        "START_ITER": _integer_at_least(0),
        "FEATURE_SOURCE": _one_of(FEATURE_SOURCES),
        "FEATURE_GRAD_SCALE": _non_negative,
        "GRAD_RATIO_CAP": _non_negative,
        "DETACH_ANCHORS": _boolean,
        "ANCHOR_WEIGHT_LOW": _non_negative,
        "ANCHOR_WEIGHT_HIGH": _non_negative,
        "NORMALIZE_BEFORE_MIX": _boolean,
        "LOSS_AVERAGE": _one_of(LOSS_AVERAGES),
        "MAX_POSITIVES": _integer_at_least(1),
        "MAX_NEGATIVES": _integer_at_least(1),
        "MIN_NEGATIVES": _integer_at_least(0),
        "SAMPLING_CAPS": _one_of(SAMPLING_CAPS),
        "BANE.ENABLED": _boolean,
        "BANE.TOP_K_RATIO": _fraction,
        "BANE.ERROR_MAP": _one_of(ERROR_MAP_READINGS),
        "BANE.TIE_BREAK": _one_of(TIE_BREAKS),
    }


def _bad(key: str, value, expected: str) -> ValueError:
    return ValueError(f"{PREFIX}{key} = {value!r}: expected {expected}")


def check_contextrast_values(values: Mapping[str, Any]) -> None:
    """Check some ``MODEL.CONTEXTRAST`` values, and the relations between those given.

    Args:
        values: key under ``MODEL.CONTEXTRAST.`` (``"START_ITER"``, ``"BANE.TOP_K_RATIO"``) ->
            value.

    Raises:
        ValueError: naming the first bad key, its value and what it accepts.
        KeyError: a key no rule knows (a programming error: add its rule here).
    """
    rules = _rules()
    for key, value in values.items():
        if key not in rules:
            raise KeyError(f"no rule for {PREFIX}{key}: add one to contextrast/config_checks.py")
        expected = rules[key](value)
        if expected is not None:
            raise _bad(key, value, expected)
    if "IN_FEATURES" in values and "LAYER_WEIGHTS" in values:
        names, weights = values["IN_FEATURES"], values["LAYER_WEIGHTS"]
        if len(weights) != len(names):
            expected = f"{len(names)} weights, one per IN_FEATURES entry {list(names)}"
            raise _bad("LAYER_WEIGHTS", list(weights), expected)
    if "ANCHOR_WEIGHT_LOW" in values and "ANCHOR_WEIGHT_HIGH" in values:
        pair = (values["ANCHOR_WEIGHT_LOW"], values["ANCHOR_WEIGHT_HIGH"])
        if sum(pair) <= 0:
            raise _bad("ANCHOR_WEIGHT_LOW/ANCHOR_WEIGHT_HIGH", pair, "weights not both zero")
    if "MIN_NEGATIVES" in values and "MAX_NEGATIVES" in values:
        pair = (values["MIN_NEGATIVES"], values["MAX_NEGATIVES"])
        if pair[0] > pair[1]:
            raise _bad("MIN_NEGATIVES/MAX_NEGATIVES", pair, "MIN_NEGATIVES <= MAX_NEGATIVES")


def contextrast_values(cfg) -> Dict[str, Any]:
    """Every ``MODEL.CONTEXTRAST`` value of ``cfg``, keyed as :func:`check_contextrast_values`
    takes them (``"BANE.TOP_K_RATIO"`` for a key of a sub-node)."""
    out: Dict[str, Any] = {}

    def walk(node, prefix: str) -> None:
        for name, value in node.items():
            if isinstance(value, Mapping):
                walk(value, f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = value

    walk(cfg.MODEL.CONTEXTRAST, "")
    return out


def contextrast_config_warnings(cfg) -> List[str]:
    """Settings of a Contextrast config (``ENABLED``) under which its contrastive term changes
    nothing it is meant to change; empty when there are none or Contextrast is off."""
    c = cfg.MODEL.CONTEXTRAST
    if not c.ENABLED:
        return []
    found = []
    if c.START_ITER >= cfg.SOLVER.MAX_ITER:
        found.append(
            f"{PREFIX}START_ITER = {c.START_ITER} >= SOLVER.MAX_ITER = {cfg.SOLVER.MAX_ITER}: "
            "the contrastive gradient never reaches the network (the projection heads train, "
            "the segmentation network trains as the baseline does)"
        )
    if c.LOSS_WEIGHT == 0 or not any(w > 0 for w in c.LAYER_WEIGHTS):
        found.append(
            f"{PREFIX}LOSS_WEIGHT = {c.LOSS_WEIGHT}, LAYER_WEIGHTS = {list(c.LAYER_WEIGHTS)}: "
            "loss_contrast is 0 at every iteration (the network trains as the baseline does)"
        )
    if c.FEATURE_GRAD_SCALE == 0 and c.GRAD_RATIO_CAP > 0:
        found.append(
            f"{PREFIX}GRAD_RATIO_CAP = {c.GRAD_RATIO_CAP} has no effect: FEATURE_GRAD_SCALE = 0 "
            "already sends no contrastive gradient into the network (set one of them)"
        )
    return found


def check_contextrast_config(cfg) -> List[str]:
    """Check every ``MODEL.CONTEXTRAST`` value of ``cfg`` (``ENABLED`` or not).

    Returns:
        :func:`contextrast_config_warnings` of ``cfg``.

    Raises:
        ValueError: naming the first bad key, its value and what it accepts.
    """
    values = contextrast_values(cfg)
    missing = sorted(set(_rules()) - set(values))
    if missing:  # a config made without add_contextrast_config
        raise ValueError(f"the config lacks {[PREFIX + k for k in missing]}")
    check_contextrast_values(values)
    return contextrast_config_warnings(cfg)
