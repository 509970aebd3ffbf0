"""Deep linear encoders with a head, trained on the population spectral loss (exact moments).

The model is f_l(x) = W_l ... W_1 x (W_1: (p, d) the encoder, W_2..W_L: (p, p) the head), the
loss the population spectral contrastive loss of the end-to-end map W = W_L ... W_1,

    L(W) = -2 Tr(W M+ W^T) + ||W M W^T||_F^2,   M = diag(phi^2 + sigma^2),
                                                 M+ = diag((1 - alpha)^2 phi^2)

(:func:`simdyn.papers.projection_head.closed_forms.population_moments`). Training runs through
simdyn's core: the one loop (:func:`simdyn.run_loop`, GD or momentum GD via optax) and the seed
engine (:func:`simdyn.engine.run_per_seed`: seed i's init is ``fold_in(key, i)``, whatever the
chunking). What is recorded at every log step, per seed:

* ``weights`` (R, L, d): the feature weights ||f_l(e_i)|| of every layer (Thm 3.5's quantity);
* ``imbalance`` (R, L - 1): ||W_l W_l^T - W_{l+1}^T W_{l+1}||_F (Thm 3.4's conserved quantity);
* ``loss`` (R,): the population loss.

Init (a choice the paper leaves open): entries of W_1 ~ N(0, sigma_0^2 / d), of W_l (l >= 2)
~ N(0, sigma_0^2 / p); with ``balanced_init`` the head layers are instead set so that
W_{l+1}^T W_{l+1} = W_l W_l^T (two layers: W_2 = (W_1 W_1^T)^(1/2)), Thm 3.5's premise.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from simdyn import safe_linalg
from simdyn.config import ConfigError
from simdyn.engine import run_per_seed
from simdyn.loop import Record, run_loop
from simdyn.papers.projection_head.closed_forms import population_moments
from simdyn.seeds import as_key, streams

Array = jax.Array
Params = tuple[Array, ...]


@dataclass(frozen=True)
class LinearRun:
    """One training setting (static, hashable).

    Args:
      phi, alpha: per-feature magnitudes and re-draw probabilities (d each).
      sigma: augmentation noise standard deviation.
      p: embedding width (every layer's output).
      layers: L >= 2 (encoder + L - 1 head layers).
      sigma_0: init scale.
      lr: step size. momentum: heavy-ball coefficient (0: plain GD).
      steps: optimizer steps. log_every: record every this many steps (divides steps).
      balanced_init: start from a balanced factorisation (see module docs).
      dtype: "float64" (needs 64-bit JAX) or "float32".
    """

    phi: tuple[float, ...]
    alpha: tuple[float, ...]
    sigma: float
    p: int
    layers: int = 2
    sigma_0: float = 0.01
    lr: float = 0.05
    momentum: float = 0.0
    steps: int = 1000
    log_every: int = 10
    balanced_init: bool = False
    dtype: str = "float64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "phi", tuple(float(v) for v in self.phi))
        object.__setattr__(self, "alpha", tuple(float(v) for v in self.alpha))
        if not self.phi or len(self.alpha) != len(self.phi):
            raise ConfigError("invalid alpha: one value per feature of phi (non-empty)")
        if any(not 0.0 <= a <= 1.0 for a in self.alpha):
            raise ConfigError(f"invalid alpha={self.alpha}: every value must be in [0, 1]")
        for name, lo in (("p", 1), ("layers", 2), ("steps", 0), ("log_every", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < lo:
                raise ConfigError(f"invalid {name}={value!r}: must be an integer >= {lo}")
        if self.steps % self.log_every:
            raise ConfigError(f"invalid log_every={self.log_every}: must divide steps={self.steps}")
        for name in ("sigma", "sigma_0", "lr"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ConfigError(f"invalid {name}={value!r}: must be finite and >= 0 (lr > 0)")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"invalid momentum={self.momentum!r}: must be in [0, 1)")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"invalid dtype={self.dtype!r}: must be float32 or float64")

    @property
    def d(self) -> int:
        return len(self.phi)


class Trajectory(NamedTuple):
    """One seed's record (R = steps / log_every + 1 log steps); see the module docs."""

    weights: Array  # (R, L, d)
    imbalance: Array  # (R, L - 1)
    loss: Array  # (R,)
    diverged: Array  # ()
    diverged_step: Array  # ()


def end_to_end(params: Params) -> Array:
    """W = W_L ... W_1, (p, d)."""
    w = params[0]
    for layer in params[1:]:
        w = layer @ w
    return w


def layer_maps(params: Params) -> list[Array]:
    """[W_1, W_2 W_1, ..., W_L ... W_1]: the map of each layer's output, each (p, d)."""
    maps, w = [params[0]], params[0]
    for layer in params[1:]:
        w = layer @ w
        maps.append(w)
    return maps


def population_loss(params: Params, m: Array, m_plus: Array) -> Array:
    """-2 Tr(W M+ W^T) + ||W M W^T||_F^2 for diagonal M = diag(m), M+ = diag(m_plus)."""
    w = end_to_end(params)
    return -2.0 * jnp.sum(w**2 * m_plus) + jnp.sum(((w * m) @ w.T) ** 2)


def init_params(key: Array, run: LinearRun) -> Params:
    """The init of one seed (module docs); a tuple of L arrays."""
    dtype = jnp.dtype(run.dtype)
    keys = jax.random.split(key, run.layers)
    w1 = run.sigma_0 / np.sqrt(run.d) * jax.random.normal(keys[0], (run.p, run.d), dtype)
    if run.balanced_init:
        layers, w = [w1], w1
        for _ in range(1, run.layers):
            evals, evecs = safe_linalg.eigh(w @ w.T)
            nxt = (evecs * jnp.sqrt(jnp.maximum(evals, 0.0))) @ evecs.T  # (W W^T)^(1/2)
            layers.append(nxt)
            w = nxt
        return tuple(layers)
    rest = tuple(
        run.sigma_0 / np.sqrt(run.p) * jax.random.normal(k, (run.p, run.p), dtype) for k in keys[1:]
    )
    return (w1, *rest)


def make_train(run: LinearRun) -> Callable[[Array, None], Trajectory]:
    """``train(seed_key, None) -> Trajectory`` for one seed (pure, jit- and vmap-compatible)."""
    dtype = jnp.dtype(run.dtype)
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ConfigError("dtype='float64' needs 64-bit JAX: call simdyn.enable_x64() first")
    m_np, mp_np = population_moments(run.phi, run.alpha, run.sigma)
    m, m_plus = jnp.asarray(m_np, dtype), jnp.asarray(mp_np, dtype)
    loss = functools.partial(population_loss, m=m, m_plus=m_plus)
    grad = jax.grad(loss)
    optimizer = optax.sgd(run.lr, momentum=run.momentum or None)

    def weights(params: Params, _ctx) -> Array:
        return jnp.stack([jnp.linalg.norm(f, axis=0) for f in layer_maps(params)])

    def imbalance(params: Params, _ctx) -> Array:
        gaps = [
            jnp.linalg.norm(a @ a.T - b.T @ b) for a, b in zip(params[:-1], params[1:], strict=True)
        ]
        return jnp.stack(gaps)

    record = Record(every=run.log_every, observables={"weights": weights, "imbalance": imbalance})

    def train(seed_key: Array, _hparams: None = None) -> Trajectory:
        params0 = init_params(streams(seed_key).init, run)
        out = run_loop(
            params0,
            lambda params, step: grad(params),
            optimizer,
            steps=run.steps,
            record=record,
            loss=loss,
        )
        return Trajectory(
            out.observed["weights"],
            out.observed["imbalance"],
            out.loss,
            out.diverged,
            out.diverged_step,
        )

    return train


_train_of = functools.lru_cache(maxsize=16)(make_train)  # one function object per run: cached


def simulate(
    run: LinearRun, seeds: int = 16, key: int | Array = 0, *, chunk_size: int = 256
) -> Trajectory:
    """Train ``seeds`` seeds of ``run`` (seed i: ``fold_in(key, i)``); stacked numpy results
    with a leading seed axis.

    Args:
      run: the setting.
      seeds: the number of seeds.
      key: base PRNG key (or int).
      chunk_size: seeds per compiled call (results do not depend on it).

    Returns:
      :class:`Trajectory` of (S, ...) numpy arrays.
    """
    if isinstance(seeds, bool) or int(seeds) < 1:
        raise ConfigError(f"invalid seeds={seeds!r}: must be an integer >= 1")
    out, _ = run_per_seed(
        _train_of(run), as_key(key), np.arange(int(seeds)), None, chunk_size=chunk_size, devices=1
    )
    return out
