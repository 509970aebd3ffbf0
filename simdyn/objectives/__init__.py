"""Exact representations of the training objective, one object per representation, and their
registry.

Every full-batch representation of the paper's loss L(Theta) is a class in its own module here
(:mod:`~simdyn.objectives.structured`, :mod:`~simdyn.objectives.dense`,
:mod:`~simdyn.objectives.projected`, :mod:`~simdyn.objectives.sample`) with the interface of
:class:`simdyn.objectives.base.Representation`: ``applies(config)`` says whether it is exact
for a config, ``build(config, training_set, beta)`` returns the per-seed
:class:`~simdyn.objectives.base.Objective` (a pytree with ``loss(theta)`` and
``loss_and_grad(theta)``), and ``step_cost(config)`` / ``memory_per_seed(config)`` state its
cost. ``backend='auto'`` asks :func:`choose`, which takes the applicable representation with the
lowest modelled time (:func:`simdyn.cost.estimated_seconds`).

Adding a representation is one new module with its class plus one line in :data:`REGISTRY`.
This module imports no JAX (the config and the CLI read the names without paying for it); a
representation's module is imported when :func:`get` first asks for it.

>>> from simdyn import preset
>>> from simdyn import objectives
>>> objectives.names()
('structured', 'projected', 'sample', 'dense')
>>> objectives.choose(preset("fig2a"))
'structured'
>>> objectives.get("dense").applies(preset("fig2a"))
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    from simdyn.config import Config
    from simdyn.cost import Machine
    from simdyn.objectives.base import Representation

# name -> "module:class", in tie-break order for `auto` (an earlier entry wins a modelled tie).
REGISTRY: dict[str, str] = {
    "structured": "simdyn.objectives.structured:StructuredObjective",
    "projected": "simdyn.objectives.projected:ProjectedObjective",
    "sample": "simdyn.objectives.sample:SampleObjective",
    "dense": "simdyn.objectives.dense:DenseObjective",
    "encoder": "simdyn.objectives.encoder:EncoderRepresentation",
}
# Representations parameterised by a model: a run builds one from its model
# (``get("encoder")(encoder, loss)``); never a ``train.backend`` value, never picked by auto.
NEEDS_MODEL = frozenset({"encoder"})


def names() -> tuple[str, ...]:
    """The representations of the linear model (the ``train.backend`` values besides
    ``auto``), in tie-break order."""
    return tuple(name for name in REGISTRY if name not in NEEDS_MODEL)


def get(name: str) -> type[Representation]:
    """The representation class registered as ``name``.

    Raises:
      ConfigError: ``name`` is not registered (the message lists the registered names).
    """
    if name not in REGISTRY:
        from simdyn.config import ConfigError  # here: simdyn.config imports this package

        raise ConfigError(f"invalid backend={name!r}: must be one of {tuple(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def validate(config: Config) -> Config:
    """Check ``train.backend`` against the registry: the rules of each representation live
    with it (its ``applies`` for full-batch GD, its ``minibatch`` flag for SGD), not in the
    config. Called before any work (:func:`resolve`, and so ``simulate`` and the CLI).

    Args:
      config: the run.

    Returns:
      ``config`` unchanged.

    Raises:
      ConfigError: naming ``train.backend``, its value and the values allowed for this config.

    >>> from simdyn import preset
    >>> from simdyn import objectives
    >>> gaussian = preset("fig2a").replace(noise="gaussian", backend="structured")
    >>> objectives.validate(gaussian)
    Traceback (most recent call last):
    ...
    simdyn.config.ConfigError: invalid train.backend='structured': ...
    """
    from simdyn.config import ConfigError  # here: the config names no representation

    name = config.train.backend
    if name == "auto":
        return config
    if name not in names():
        allowed = ("auto", *names())
        raise ConfigError(f"invalid train.backend={name!r}: must be one of {allowed}")
    if not config.train.full_batch:
        if not getattr(get(name), "minibatch", False):
            allowed = ("auto", *(n for n in names() if getattr(get(n), "minibatch", False)))
            raise ConfigError(
                f"invalid train.backend={name!r}: must be one of {allowed} for minibatch SGD"
            )
        return config
    if not get(name).applies(config):
        raise ConfigError(
            f"invalid train.backend={name!r}: not exact for this data model; must be one of "
            f"{('auto', *applicable(config))}"
        )
    return config


def applicable(config: Config) -> tuple[str, ...]:
    """The registered representations that are exact full-batch paths for ``config``."""
    return tuple(name for name in names() if get(name).applies(config))


def choose(config: Config, machine: Machine | None = None) -> str:
    """The applicable representation with the lowest modelled time per seed-step.

    Args:
      config: the run.
      machine: the time model's throughputs; default :data:`simdyn.cost.DEFAULT_MACHINE`.

    Returns the registered name; ties go to the earlier entry of :data:`REGISTRY`.
    """
    from simdyn.cost import DEFAULT_MACHINE, estimated_seconds

    machine = DEFAULT_MACHINE if machine is None else machine
    options = applicable(config)
    return min(options, key=lambda b: estimated_seconds(get(b).step_cost(config), machine))


def resolve(config: Config) -> str:
    """The representation a run uses: ``train.backend`` unless it is ``auto``; ``auto`` is
    :func:`choose` for full-batch GD and ``sample`` for minibatch SGD (the batch loss is
    differentiated per point)."""
    t = validate(config).train
    if t.backend != "auto":
        return t.backend
    return choose(config) if t.full_batch else "sample"


def full_batch_name(config: Config) -> str:
    """The representation that evaluates the FULL training loss of ``config``: the run's own
    for full-batch GD; for minibatch SGD (which records the full loss) the cheapest exact one."""
    return resolve(config) if config.train.full_batch else choose(config)


def xla_step_cost(name: str, config: Config) -> dict[str, float]:
    """XLA's count (``flops``, ``bytes accessed``) of one GD step of one seed of the
    representation ``name`` (:func:`simdyn.objectives.base.xla_step_cost`)."""
    from simdyn.objectives.base import xla_step_cost as count

    return count(get(name), config)


__all__ = [
    "NEEDS_MODEL",
    "REGISTRY",
    "applicable",
    "choose",
    "full_batch_name",
    "validate",
    "get",
    "names",
    "resolve",
    "xla_step_cost",
]
