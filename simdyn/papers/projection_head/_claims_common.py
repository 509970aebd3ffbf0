"""What the projection-head paper's two claim modules (:mod:`.claims_linear`,
:mod:`.claims_nonlinear`) declare alike: the convergence premise's pass fraction, the tag of a
claim's seed stream, and a claim's designs at the three scales."""

from __future__ import annotations

import dataclasses
import zlib
from typing import TYPE_CHECKING, Any, TypeVar

import jax

from simdyn.seeds import as_key
from simdyn.verify.common import Scale

PASS_FRACTION = 0.9  # a FRACTION rule holds if more than this fraction of units pass

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def stream_tag(name: str) -> int:
    """The 31-bit tag of seed stream ``name`` (its CRC-32)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def fold_stream(name: str, key: int) -> jax.Array:
    """The JAX key of stream ``name`` under the verify base key ``key`` (unchecked)."""
    return jax.random.fold_in(as_key(int(key)), stream_tag(name))


def by_scale(quick: D, small: dict[str, Any], full: dict[str, Any]) -> dict[Scale, D]:
    """A claim's designs: "quick" is ``quick``; "small" (the tests) and "full" (>= 1000 seeds per
    design point) change the fields given from it."""
    return {
        "small": dataclasses.replace(quick, **small),
        "quick": quick,
        "full": dataclasses.replace(quick, **full),
    }
