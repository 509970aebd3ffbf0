"""simdyn: exact, vmapped simulation of (S)GD training of linear contrastive learners.

The public API is what this module exports, plus the modules in :data:`PUBLIC_MODULES` (one
concept each: the loop, the key protocol, the seed engine, the data model, the moments, the
losses, the metrics, the closed forms, the cost model, the projected form, the encoders).
Everything else may change. Experiments and benchmarks use only this API (a test checks it).

Example:
  >>> import simdyn
  >>> config = simdyn.preset("fig2a").replace(n=40, d=80, steps=20, log_every=10)
  >>> ds = simdyn.simulate(config, seeds=2)
  >>> ds["alignment"].shape  # (seed, step, feature): steps 0, 10, 20; bias + K features
  (2, 3, 5)
"""

from __future__ import annotations

__version__ = "0.1.0"

from simdyn.config import (  # noqa: E402  (no JAX: cheap)
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    ResultFileError,
    TrainConfig,
    apply_overrides,
)
from simdyn.presets import PRESETS, fig4_config, preset  # noqa: E402  (no JAX: cheap)

# The names below pull in JAX (seconds to import). They load on first use (PEP 562), so
# ``import simdyn`` and the command line's --help, typos and bad input answer at once.
_LAZY = {
    "enable_deterministic": "simdyn.distributed",
    "load": "simdyn.simulation",
    "save": "simdyn.simulation",
    "seed_test_set": "simdyn.simulation",
    "seed_training_set": "simdyn.simulation",
    "simulate": "simdyn.simulation",
    "LoopResult": "simdyn.loop",
    "Record": "simdyn.loop",
    "run_loop": "simdyn.loop",
    "ContrastiveLoss": "simdyn.generic_train",
    "run_generic": "simdyn.generic_simulation",
    "simulate_generic": "simdyn.generic_simulation",
    "make_encoder": "simdyn.encoders",
    "init_theta": "simdyn.initialization",
    "HyperParams": "simdyn.train",
    "Trajectory": "simdyn.train",
    "default_hparams": "simdyn.train",
    "make_train": "simdyn.train",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simdyn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def enable_x64() -> None:
    """Switch JAX to 64-bit floats (needed for ``train.dtype='float64'`` and theory checks).

    The switch is global: it applies to every array created afterwards.

    Returns:
      None.

    Examples:
      >>> import jax.numpy as jnp
      >>> import simdyn
      >>> simdyn.enable_x64()
      >>> jnp.zeros(1).dtype
      dtype('float64')
    """
    import jax

    jax.config.update("jax_enable_x64", True)


PUBLIC_MODULES = (
    "simdyn.config",
    "simdyn.cost",
    "simdyn.data",
    "simdyn.encoders",
    "simdyn.engine",
    "simdyn.initialization",
    "simdyn.loop",
    "simdyn.losses",
    "simdyn.metrics",
    "simdyn.moments",
    "simdyn.objectives",
    "simdyn.projected",
    "simdyn.seeds",
    "simdyn.theory",
)

__all__ = [
    "ContrastiveLoss",
    "Config",
    "ConfigError",
    "DataConfig",
    "HyperParams",
    "LoopResult",
    "Record",
    "ModelConfig",
    "PRESETS",
    "ResultFileError",
    "TrainConfig",
    "Trajectory",
    "apply_overrides",
    "default_hparams",
    "enable_deterministic",
    "enable_x64",
    "fig4_config",
    "init_theta",
    "load",
    "make_encoder",
    "make_train",
    "preset",
    "run_generic",
    "run_loop",
    "save",
    "seed_test_set",
    "seed_training_set",
    "simulate",
    "simulate_generic",
]
