"""simdyn: exact, vmapped simulation of (S)GD training of linear contrastive learners.

The public API is what this module exports, plus the modules in :data:`PUBLIC_MODULES` (one
concept each: the loop, the key protocol, the seed engine and its chunk sizes, multi-process
setup, the data model, the moments, the losses, the metrics, the closed forms, the cost model,
the representations and their extension base, the projected form, the encoders, the
summaries). The internal modules live in ``simdyn._src``, private by name, and may change.
Experiments, benchmarks and docs use only this API (a test checks it).

Example:
  >>> import simdyn
  >>> config = simdyn.preset("fig2a").replace(n=40, d=80, steps=20, log_every=10)
  >>> ds = simdyn.simulate(config, seeds=2)
  >>> ds["alignment"].shape  # (seed, step, feature): steps 0, 10, 20; bias + K features
  (2, 3, 5)
"""

from __future__ import annotations

__version__ = "0.1.0"

from simdyn._src.presets import PRESETS, fig4_config, preset  # noqa: E402  (no JAX: cheap)
from simdyn.config import (  # noqa: E402  (no JAX: cheap)
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    ResultFileError,
    TrainConfig,
    apply_overrides,
)

# The names below pull in JAX (seconds to import). They load on first use (PEP 562), so
# ``import simdyn`` and the command line's --help, typos and bad input answer at once.
_LAZY = {
    "enable_deterministic": "simdyn.distributed",
    "load": "simdyn._src.simulation",
    "save": "simdyn._src.simulation",
    "seed_test_set": "simdyn._src.simulation",
    "seed_training_set": "simdyn._src.simulation",
    "simulate": "simdyn._src.simulation",
    "LoopResult": "simdyn.loop",
    "Record": "simdyn.loop",
    "run_loop": "simdyn.loop",
    "ContrastiveLoss": "simdyn._src.generic_train",
    "run_generic": "simdyn._src.generic_simulation",
    "simulate_generic": "simdyn._src.generic_simulation",
    "sweep": "simdyn._src.sweep",
    "sweep_configs": "simdyn._src.sweep",
    "make_encoder": "simdyn.encoders",
    "init_theta": "simdyn.initialization",
    "HyperParams": "simdyn._src.train",
    "Recording": "simdyn._src.train",
    "Trajectory": "simdyn._src.train",
    "default_hparams": "simdyn._src.train",
    "make_train": "simdyn._src.train",
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
    "simdyn.chunking",
    "simdyn.config",
    "simdyn.cost",
    "simdyn.data",
    "simdyn.distributed",
    "simdyn.encoders",
    "simdyn.engine",
    "simdyn.initialization",
    "simdyn.loop",
    "simdyn.losses",
    "simdyn.metrics",
    "simdyn.moments",
    "simdyn.objectives",
    "simdyn.objectives.base",
    "simdyn.objectives.dense",
    "simdyn.projected",
    "simdyn.safe_linalg",
    "simdyn.seeds",
    "simdyn.summary",
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
    "Recording",
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
    "sweep",
    "sweep_configs",
]
