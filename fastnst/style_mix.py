"""Style mixes for multi-style models: `starry_night:0.6,great_wave:0.4` -> a weight vector.

A mix names styles of one multi-style model (conditional instance norm, fastnst.transformer),
each with a non-negative weight (default 1); the weights are normalised to sum 1. One name alone
is that style. The shipped multi-style model is `MULTI_MODEL`; `--multi FILE` names another.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from fastnst.errors import UsageError

MULTI_MODEL = "multi"  # the shipped multi-style model: models/multi.safetensors
STYLE_INPUT = "style_weights"  # a multi-style ONNX graph's second input: (styles,) float32
_PART = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*(?::\s*([^,:]+?))?\s*$")


class MixError(UsageError):
    """A style mix that cannot be used (unknown style, bad weight); the message says which."""


MIX_WEIGHT_RANGE = (1e-6, 1e6)  # a non-zero weight's bounds: float32 sums and ratios stay exact


def parse_mix(spec: str) -> list[tuple[str, float]]:
    """`"a:0.6,b:0.4"` -> `[("a", 0.6), ("b", 0.4)]`; a name without weight weighs 1. MixError
    for a malformed part, a weight that is not 0 or within MIX_WEIGHT_RANGE (`3e38` overflows
    float32 when summed, `1e-320` is 0 there), a repeated name, or all weights 0."""
    parts: list[tuple[str, float]] = []
    for text in spec.split(","):
        match = _PART.match(text)
        if not match:
            raise MixError(f"style mix {spec!r}: {text.strip()!r} is not NAME or NAME:WEIGHT")
        name, weight_text = match.group(1), match.group(2)
        try:
            weight = 1.0 if weight_text is None else float(weight_text)
        except ValueError:
            raise MixError(f"style mix {spec!r}: weight {weight_text!r} of {name} is not a"
                           " number") from None
        low, high = MIX_WEIGHT_RANGE
        if not math.isfinite(weight) or weight < 0 or (weight and not low <= weight <= high):
            raise MixError(f"style mix {spec!r}: weight {weight_text} of {name} must be 0 or"
                           f" between {low:g} and {high:g} (only the ratios count)")
        if name in (n for n, _ in parts):
            raise MixError(f"style mix {spec!r}: {name} is named twice")
        parts.append((name, weight))
    if sum(w for _, w in parts) <= 0:
        raise MixError(f"style mix {spec!r}: the weights sum to 0")
    return parts


def mix_vector(parts: Sequence[tuple[str, float]], styles: Sequence[str], model: str = ""
               ) -> np.ndarray:
    """The `(len(styles),)` float32 weights of `parts` over the model's `styles`, summing to 1.
    MixError names the model's styles when a part is not one of them."""
    vector = np.zeros(len(styles), np.float64)  # summed in float64, then float32
    for name, weight in parts:
        if name not in styles:
            where = f" {model}" if model else ""
            raise MixError(f"{name}: not a style of the multi-style model{where}; it has"
                           f" {', '.join(styles)}")
        vector[list(styles).index(name)] = weight
    return (vector / vector.sum()).astype(np.float32)


def mix_label(parts: Sequence[tuple[str, float]]) -> str:
    """A file-name-safe label: the style name alone, or `a60-b40` (percent of the total)."""
    total = sum(w for _, w in parts)
    kept = [(n, w) for n, w in parts if w > 0]
    if len(kept) == 1:
        return kept[0][0]
    return "-".join(f"{n}{round(100 * w / total)}" for n, w in kept)
