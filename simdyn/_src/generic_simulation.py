"""Generic simulation: :func:`simdyn._src.generic_train.make_generic_train` (any encoder, any
contrastive loss) over many seeds through the seed engine, and its labelled dataset.

:func:`run_generic` returns the stacked :class:`~simdyn._src.generic_train.GenericTrajectory`;
:func:`simulate_generic` labels it like :func:`simdyn.simulate` (dims seed, step, feature,
probe_step) and records the encoder and the loss in the attributes. Seed i's key is
``fold_in(key, i)`` whatever the chunking or the devices, as for :func:`simdyn.simulate`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import jax
import numpy as np
import xarray as xr

from simdyn._src.generic_train import ContrastiveLoss, GenericTrajectory, make_generic_train
from simdyn._src.simulation import (
    TRAJ_DIMS,
    resolve_progress,
    run_identity,
    seed_list_from,
    trajectories_to_dataset,
)
from simdyn.config import Config
from simdyn.encoders import SparseEncoder
from simdyn.engine import environment_attrs, run_per_seed
from simdyn.seeds import as_key, key_data

Array = jax.Array


@functools.lru_cache(maxsize=8)
def _per_seed(
    config: Config, encoder: SparseEncoder, loss: ContrastiveLoss
) -> Callable[[Array, Any], GenericTrajectory]:
    """One seed's training as the seed engine takes it, ``(seed_key, hparams) -> result``
    (no hyper-parameters here); cached, so the engine's compiled program, keyed by this
    function's identity, serves repeated runs of one setting."""
    train = make_generic_train(config, encoder, loss)
    return lambda seed_key, _: train(seed_key)


def _describe(encoder: SparseEncoder, loss: ContrastiveLoss) -> dict:
    """The encoder and loss as JSON-able dicts (result attributes, checkpoint manifests)."""
    enc = {
        "widths": list(encoder.widths),
        "head": list(encoder.head),
        "normalize": encoder.normalize,
        "sigma_0": encoder.sigma_0,
        "use_bias": encoder.use_bias,
        "hidden_init_scale": encoder.hidden_init_scale,
    }
    return {"encoder": enc, "loss": asdict(loss) | {"name": loss.name}}


def run_generic(
    config: Config,
    encoder: SparseEncoder,
    loss: ContrastiveLoss,
    seeds: int | Sequence[int] = 16,
    key: int | Array = 0,
    *,
    chunk_size: int | None = None,
    devices: int | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool | Callable[[int, int, float], None] = False,
) -> GenericTrajectory:
    """Train ``encoder`` with ``loss`` by autodiff for many seeds at once, through the seed
    engine (:func:`simdyn.engine.run_per_seed`) as :func:`simdyn.simulate` is.

    Seed i's key is ``fold_in(key, i)`` whatever ``chunk_size`` or ``devices``, so its result
    does not depend on which other seeds run beside it.

    Args:
      config: the data model and training settings (``train.steps``, ``lr``, ...).
      encoder: the model (:func:`simdyn.make_encoder`); its input width must be ``data.d``.
      loss: the contrastive loss on views (:class:`ContrastiveLoss`).
      seeds: a count S (seeds 0..S-1) or a list of distinct seed indices.
      key: the base key (an int or a JAX key).
      chunk_size: seeds per compiled call (default: all at once).
      devices: devices to shard the seeds over (default: all).
      checkpoint_dir: makes the run resumable (same manifest checks as ``simulate``).
      progress: print, or call back ``(done, total, seconds)``, after every chunk.

    Returns:
      The stacked :class:`~simdyn._src.generic_train.GenericTrajectory`, leading axis = seed:
      alignment (S, T, K + 1) of the first layer with each feature, loss (S, T), the probes,
      divergence flags and ``first_layer_norm`` (S, T).

    Examples:
      >>> import simdyn
      >>> from simdyn._src.generic_train import loss_for
      >>> cfg = simdyn.preset("fig2a").replace(n=8, d=16, steps=4, log_every=2, probe_every=-1)
      >>> traj = simdyn.run_generic(cfg, simdyn.make_encoder(cfg), loss_for(cfg), seeds=2)
      >>> traj.alignment.shape, traj.loss.shape  # 2 seeds, steps 0, 2, 4, features 0..K
      ((2, 3, 5), (2, 3))
    """
    seed_list = seed_list_from(seeds)
    base = as_key(key)
    identity = run_identity(
        "generic", config, key_data(base), seed_list, **_describe(encoder, loss)
    )
    traj, _ = run_per_seed(
        _per_seed(config, encoder, loss),
        base,
        np.asarray(seed_list),
        (),
        False,
        chunk_size=len(seed_list) if chunk_size is None else chunk_size,
        devices=devices,
        checkpoint_dir=checkpoint_dir,
        identity=identity,
        progress=resolve_progress(progress, "train"),
        dims=TRAJ_DIMS | {"first_layer_norm": ("run", "step")},
    )
    return traj


def simulate_generic(
    config: Config,
    encoder: SparseEncoder,
    loss: ContrastiveLoss,
    seeds: int | Sequence[int] = 16,
    key: int | Array = 0,
    **engine: Any,
) -> xr.Dataset:
    """:func:`run_generic` labelled like :func:`simdyn.simulate`, with the encoder and the
    loss recorded in the attributes.

    Args:
      config: the run's settings; it, ``encoder``, ``loss``, ``seeds`` and ``key`` are passed
        to :func:`run_generic` unchanged.
      **engine: run_generic's keywords (chunk_size, devices, checkpoint_dir, progress).

    Returns:
      An ``xarray.Dataset`` with dims seed, step, feature (and probe_step): alignment of the
      first layer (seed, step, feature), loss (seed, step), first_layer_norm (seed, step),
      diverged (seed); attributes ``backend="generic"``, ``encoder`` and ``loss`` (JSON).

    Examples:
      >>> import simdyn
      >>> from simdyn._src.generic_train import loss_for
      >>> cfg = simdyn.preset("fig2a").replace(n=8, d=16, steps=4, log_every=2, probe_every=-1)
      >>> ds = simdyn.simulate_generic(cfg, simdyn.make_encoder(cfg), loss_for(cfg), seeds=2)
      >>> dict(ds["alignment"].sizes), ds.attrs["backend"]
      ({'seed': 2, 'step': 3, 'feature': 5}, 'generic')
    """
    seed_list = seed_list_from(seeds)
    traj = run_generic(config, encoder, loss, seed_list, key, **engine)
    ds = trajectories_to_dataset(config, traj.core(), seed_list)
    ds["first_layer_norm"] = (("seed", "step"), np.asarray(traj.first_layer_norm))
    ds["alignment"].attrs["description"] = "first layer: norm of column j, feature 0 = bias"
    ds.attrs["backend"] = "generic"
    described = _describe(encoder, loss)
    ds.attrs["encoder"] = json.dumps(described["encoder"])
    ds.attrs["loss"] = json.dumps(described["loss"])
    ds.attrs["num_diverged"] = int(ds["diverged"].sum())
    ds.attrs.update(environment_attrs())
    return ds
