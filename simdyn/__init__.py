"""simdyn: exact, vmapped simulation of (S)GD training of linear contrastive learners.

The public API is what this module exports.
"""

from __future__ import annotations

__version__ = "0.1.0"

from simdyn.config import (  # noqa: E402
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
)
from simdyn.distributed import enable_deterministic  # noqa: E402
from simdyn.presets import PRESETS, fig4_config, preset  # noqa: E402
from simdyn.simulate import (  # noqa: E402
    load,
    save,
    seed_test_set,
    seed_training_set,
    simulate,
)
from simdyn.train import HyperParams, Trajectory, default_hparams, make_train  # noqa: E402


def enable_x64() -> None:
    """Switch JAX to 64-bit floats (needed for ``train.dtype='float64'`` and theory checks)."""
    import jax

    jax.config.update("jax_enable_x64", True)


__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "HyperParams",
    "ModelConfig",
    "PRESETS",
    "TrainConfig",
    "Trajectory",
    "apply_overrides",
    "default_hparams",
    "enable_deterministic",
    "enable_x64",
    "fig4_config",
    "load",
    "make_train",
    "preset",
    "save",
    "seed_test_set",
    "seed_training_set",
    "simulate",
]
