"""Generic simulation: :func:`simdyn.generic_train.make_generic_train` (any encoder, any
contrastive loss) over many seeds through the seed engine, and its labelled dataset.

:func:`run_generic` returns the stacked :class:`~simdyn.generic_train.GenericTrajectory`;
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

from simdyn.config import Config
from simdyn.encoders import SparseEncoder
from simdyn.engine import environment_attrs, run_per_seed
from simdyn.generic_train import ContrastiveLoss, GenericTrajectory, make_generic_train
from simdyn.seeds import as_key, key_data
from simdyn.simulation import TRAJ_DIMS, resolve_progress, seed_list_from, trajectories_to_dataset

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
    """Stacked GenericTrajectory (leading axis = seed) of ``jit(vmap(train))`` over seed indices,
    run by the seed engine (:func:`simdyn.engine.run_per_seed`) as :func:`simdyn.simulate` is:

    Seed i's key is ``fold_in(key, i)`` whatever ``chunk_size`` (default: all seeds at once) or
    ``devices``, so its result does not depend on which other seeds run beside it;
    ``checkpoint_dir`` makes the run resumable (same manifest checks as ``simulate``);
    ``progress`` prints or calls back after every chunk.
    """
    seed_list = seed_list_from(seeds)
    base = as_key(key)
    identity = {
        "kind": "generic",
        "config": json.loads(config.to_json()),
        "key": key_data(base),
        "seeds": seed_list,
        **_describe(encoder, loss),
    }
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
    """:func:`run_generic` labelled like :func:`simdyn.simulate` (dims seed, step, feature,
    probe_step), with the encoder and loss recorded in the attributes. ``engine``: run_generic's
    keywords (chunk_size, devices, checkpoint_dir, progress)."""
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
