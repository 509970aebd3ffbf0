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
* ``drift`` (R, L - 1): ||D_l(t) - D_l(0)||_F, how far that imbalance matrix D_l has moved;
* ``energy`` (R,): the path energy eta^2 sum_{k < t} ||grad L(theta_k)||^2 of plain GD (NaN with
  momentum). One GD step moves D_l by exactly dW_l dW_l^T - dW_{l+1}^T dW_{l+1} (the first-order
  terms cancel), so ||D_l(t) - D_l(0)||_F <= energy(t): Thm 3.4's discrete form, checkable per run;
* ``loss`` (R,): the population loss;
* ``final``: the final layers (W_1, ..., W_L).

:func:`simulate_sweep` trains several settings of one shape (same d, p, L, steps and log
schedule) in ONE compiled program: the per-setting values (moments, init scale, step size,
balanced or random, Gaussian or orthogonal init) are traced per-seed inputs (:class:`Hyper`),
not constants, so a sweep over sigma_0, eta or the data costs one compile.

Init (a choice the paper leaves open): entries of W_1 ~ N(0, sigma_0^2 / d), of W_l (l >= 2)
~ N(0, sigma_0^2 / p) (``init="gaussian"``), or W_1 = sigma_0 Q with Q a random matrix with
orthonormal rows (or columns, when p > d) and W_l = sigma_0 times a random orthogonal matrix
(``init="orthogonal"``: every singular value sigma_0, so no direction starts near zero, which a
deep net escapes only slowly); with ``balanced_init`` the head layers are instead set so that
W_{l+1}^T W_{l+1} = W_l W_l^T (two layers: W_2 = (W_1 W_1^T)^(1/2)), Thm 3.5's premise.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar, cast

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
# the arrays of a record: jax inside the traced per-seed program, numpy once the engine stacks them
A = TypeVar("A", jax.Array, np.ndarray)


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
      log_at: alternatively, the explicit log steps (sorted, distinct, in [0, steps]); when
        given, ``log_every`` is not used.
      balanced_init: start from a balanced factorisation (see module docs).
      init: "gaussian" or "orthogonal" (see module docs).
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
    log_at: tuple[int, ...] = ()
    init: str = "gaussian"

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
        object.__setattr__(self, "log_at", tuple(int(s) for s in self.log_at))
        if self.log_at:
            at = self.log_at
            unsorted = any(b <= a for a, b in zip(at, at[1:], strict=False))
            if at[0] < 0 or at[-1] > self.steps or unsorted:
                raise ConfigError(
                    f"invalid log_at={at}: sorted distinct steps in [0, steps={self.steps}]"
                )
        elif self.steps % self.log_every:
            raise ConfigError(f"invalid log_every={self.log_every}: must divide steps={self.steps}")
        for name in ("sigma", "sigma_0", "lr"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0) or (name == "lr" and value == 0):
                raise ConfigError(f"invalid {name}={value!r}: must be finite and >= 0 (lr > 0)")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"invalid momentum={self.momentum!r}: must be in [0, 1)")
        if self.init not in ("gaussian", "orthogonal"):
            raise ConfigError(f"invalid init={self.init!r}: must be gaussian or orthogonal")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"invalid dtype={self.dtype!r}: must be float32 or float64")

    @property
    def d(self) -> int:
        return len(self.phi)

    @property
    def log_steps(self) -> np.ndarray:
        """The recorded steps, (R,)."""
        if self.log_at:
            return np.asarray(self.log_at, np.int64)
        return np.arange(0, self.steps + 1, self.log_every, dtype=np.int64)


class Trajectory(NamedTuple, Generic[A]):
    """One seed's record (R log steps, :attr:`LinearRun.log_steps`); see the module docs."""

    weights: A  # (R, L, d)
    imbalance: A  # (R, L - 1)
    loss: A  # (R,)
    diverged: A  # ()
    diverged_step: A  # ()
    drift: A  # (R, L - 1)
    energy: A  # (R,)
    final: tuple[A, ...]  # (W_1 (p, d), W_2 (p, p), ..., W_L (p, p))


class Hyper(NamedTuple, Generic[A]):
    """The traced per-seed settings of a run (:func:`simulate_sweep`): m, m_plus (d,) the
    diagonals of M and M+; sigma_0, lr: scalars; balanced: 1.0 for a balanced init, else 0.0;
    orthogonal: 1.0 for the orthogonal init, 0.0 for the Gaussian one."""

    m: A
    m_plus: A
    sigma_0: A
    lr: A
    balanced: A
    orthogonal: A


SWEEPABLE = ("phi", "alpha", "sigma", "sigma_0", "lr", "balanced_init", "init")


def hyper(run: LinearRun) -> Hyper[np.ndarray]:
    """The traced settings of ``run`` (numpy, in the run's dtype)."""
    m, m_plus = population_moments(run.phi, run.alpha, run.sigma)
    dt = np.dtype(run.dtype)
    return Hyper(
        m.astype(dt),
        m_plus.astype(dt),
        np.asarray(run.sigma_0, dt),
        np.asarray(run.lr, dt),
        np.asarray(float(run.balanced_init), dt),
        np.asarray(float(run.init == "orthogonal"), dt),
    )


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


def imbalance_matrices(params: Params) -> list[Array]:
    """[W_l W_l^T - W_{l+1}^T W_{l+1} for l = 1..L-1], each (p, p)."""
    return [a @ a.T - b.T @ b for a, b in zip(params[:-1], params[1:], strict=True)]


def population_loss(params: Params, m: Array, m_plus: Array) -> Array:
    """-2 Tr(W M+ W^T) + ||W M W^T||_F^2 for diagonal M = diag(m), M+ = diag(m_plus)."""
    w = end_to_end(params)
    return -2.0 * jnp.sum(w**2 * m_plus) + jnp.sum(((w * m) @ w.T) ** 2)


def _balanced_rest(w1: Array, layers: int) -> list[Array]:
    out, w = [], w1
    for _ in range(1, layers):
        evals, evecs = safe_linalg.eigh(w @ w.T)
        nxt = (evecs * jnp.sqrt(jnp.maximum(evals, 0.0))) @ evecs.T  # (W W^T)^(1/2)
        out.append(nxt)
        w = nxt
    return out


def _orthonormal(key: Array, rows: int, cols: int, dtype) -> Array:
    """A (rows, cols) random matrix with orthonormal rows (rows <= cols) or columns."""
    g = jax.random.normal(key, (max(rows, cols), min(rows, cols)), dtype)
    q, r = safe_linalg.qr_q(g), safe_linalg.qr_r(g)  # per matrix under vmap (no pool deadlock)
    q = q * jnp.where(jnp.diag(r) < 0, -1.0, 1.0)  # Haar: fix the signs of the QR factor
    return q.T if rows <= cols else q


def _select(flag, yes, no):
    """``yes`` if flag else ``no``: a Python bool picks statically, a traced one elementwise."""
    if isinstance(flag, bool):
        return yes() if flag else no()
    a, b = yes(), no()
    return jax.tree.map(lambda u, v: jnp.where(flag > 0.5, u, v), a, b)


def _init(key: Array, run: LinearRun, sigma_0, balanced, orthogonal) -> Params:
    dtype = jnp.dtype(run.dtype)
    keys = jax.random.split(key, run.layers)

    def ortho() -> list[Array]:
        w1 = sigma_0 * _orthonormal(keys[0], run.p, run.d, dtype)
        return [w1] + [sigma_0 * _orthonormal(k, run.p, run.p, dtype) for k in keys[1:]]

    def gauss() -> list[Array]:
        w1 = sigma_0 / np.sqrt(run.d) * jax.random.normal(keys[0], (run.p, run.d), dtype)
        scale = sigma_0 / np.sqrt(run.p)
        return [w1] + [scale * jax.random.normal(k, (run.p, run.p), dtype) for k in keys[1:]]

    layers = _select(orthogonal, ortho, gauss)
    w1 = layers[0]
    return tuple(_select(balanced, lambda: [w1, *_balanced_rest(w1, run.layers)], lambda: layers))


def init_params(key: Array, run: LinearRun) -> Params:
    """The init of one seed (module docs); a tuple of L arrays."""
    return _init(key, run, run.sigma_0, bool(run.balanced_init), run.init == "orthogonal")


def make_train(run: LinearRun) -> Callable[[Array, Hyper[Array] | None], Trajectory[Array]]:
    """``train(seed_key, hyper) -> Trajectory`` for one seed (pure, jit- and vmap-compatible).

    With ``hyper=None`` the run's own settings are compiled in as constants; with a
    :class:`Hyper` they are traced inputs (then only the shape of ``run`` is used: d, p, layers,
    momentum, steps, the log schedule and dtype).
    """
    dtype = jnp.dtype(run.dtype)
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ConfigError("dtype='float64' needs 64-bit JAX: call simdyn.enable_x64() first")
    own = hyper(run)

    # The loop's state is (layers, e): e accumulates the path energy eta^2 sum_k ||grad_k||^2
    # (its "gradient" is -eta ||grad||^2, so plain SGD adds eta^2 ||grad||^2 per step).
    def weights(state, _ctx) -> Array:
        return jnp.stack([jnp.linalg.norm(f, axis=0) for f in layer_maps(state[0])])

    def imbalance(state, _ctx) -> Array:
        return jnp.stack([jnp.linalg.norm(g) for g in imbalance_matrices(state[0])])

    def drift(state, d0: list[Array]) -> Array:
        now = imbalance_matrices(state[0])
        return jnp.stack([jnp.linalg.norm(a - b) for a, b in zip(now, d0, strict=True)])

    def energy(state, _ctx) -> Array:
        return state[1] if not run.momentum else jnp.full((), jnp.nan, dtype)

    observables = {"weights": weights, "imbalance": imbalance, "drift": drift, "energy": energy}
    if run.log_at:
        record = Record(at=run.log_at, observables=observables, final=True)
    else:
        record = Record(every=run.log_every, observables=observables, final=True)

    def train(seed_key: Array, hp: Hyper[Array] | None = None) -> Trajectory[Array]:
        lr: float | Array
        if hp is None:
            m, m_plus = jnp.asarray(own.m, dtype), jnp.asarray(own.m_plus, dtype)
            lr, params0 = run.lr, init_params(streams(seed_key).init, run)
        else:
            m, m_plus, lr = hp.m, hp.m_plus, hp.lr
            params0 = _init(streams(seed_key).init, run, hp.sigma_0, hp.balanced, hp.orthogonal)
        loss = functools.partial(population_loss, m=m, m_plus=m_plus)
        grad = jax.grad(loss)

        def direction(state, step):
            g = grad(state[0])
            return g, -lr * sum(jnp.sum(a**2) for a in g)

        optimizer = optax.sgd(lr, momentum=run.momentum or None)
        out = run_loop(
            (params0, jnp.zeros((), dtype)),
            direction,
            optimizer,
            steps=run.steps,
            record=record,
            loss=lambda state: loss(state[0]),
            context=imbalance_matrices(params0),
        )
        assert out.final is not None  # Record(final=True)
        return Trajectory(
            out.observed["weights"],
            out.observed["imbalance"],
            out.loss,
            out.diverged,
            out.diverged_step,
            out.observed["drift"],
            out.observed["energy"],
            tuple(out.final[0]),
        )

    return train


_train_of = functools.lru_cache(maxsize=16)(make_train)  # one function object per run: cached


def simulate(
    run: LinearRun, seeds: int = 16, key: int | Array = 0, *, chunk_size: int = 256
) -> Trajectory[np.ndarray]:
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
    return cast("Trajectory[np.ndarray]", out)  # the engine stacks the seeds' records in numpy


def _shape_of(run: LinearRun) -> LinearRun:
    """``run`` with its sweepable settings replaced by fixed placeholders: the cache key of the
    traced program, so every sweep of one shape shares one compile."""
    return dataclasses.replace(
        run,
        phi=(1.0,) * run.d,
        alpha=(0.0,) * run.d,
        sigma=0.0,
        sigma_0=1.0,
        lr=1.0,
        balanced_init=False,
        init="gaussian",
    )


def simulate_sweep(
    run: LinearRun,
    points: Sequence[Mapping[str, Any]],
    seeds: int,
    key: int | Array = 0,
    *,
    chunk_size: int = 512,
) -> Trajectory[np.ndarray]:
    """Train ``seeds`` seeds at each of several settings of one shape, in one compiled program.

    Args:
      run: the shape and the defaults (d, p, layers, momentum, steps, log schedule, dtype).
      points: per point, overrides of ``run``'s fields among :data:`SWEEPABLE` (phi, alpha,
        sigma, sigma_0, lr, balanced_init, init); each point is checked as a :class:`LinearRun`.
      seeds: seeds per point.
      key: base PRNG key: run r = point (r // seeds), seed (r % seeds) trains from
        ``fold_in(key, r)``, so no two points share a seed.
      chunk_size: runs per compiled call (results do not depend on it).

    Returns:
      :class:`Trajectory` of (P * seeds, ...) numpy arrays, point-major.
    """
    stacked = _stacked_hypers(run, points, seeds)
    out, _ = run_per_seed(
        _train_of(_shape_of(run)),
        as_key(key),
        np.arange(stacked.m.shape[0]),
        stacked,
        per_run_hparams=True,
        chunk_size=chunk_size,
        devices=1,
    )
    return cast("Trajectory[np.ndarray]", out)  # the engine stacks the runs' records in numpy


def _stacked_hypers(
    run: LinearRun, points: Sequence[Mapping[str, Any]], seeds: int
) -> Hyper[np.ndarray]:
    """One :class:`Hyper` row per run of a sweep (point-major), each point checked."""
    if isinstance(seeds, bool) or int(seeds) < 1 or not points:
        raise ConfigError(f"invalid seeds={seeds!r} or no points: need >= 1 of each")
    hypers = []
    for point in points:
        bad = set(point) - set(SWEEPABLE)
        if bad:
            raise ConfigError(f"invalid sweep field(s) {sorted(bad)}: must be among {SWEEPABLE}")
        one = dataclasses.replace(run, **point)
        if one.d != run.d:
            raise ConfigError(f"invalid sweep point: d={one.d}, the run's shape has d={run.d}")
        hypers.append(hyper(one))
    fields = zip(*hypers, strict=True)
    return Hyper(*(np.repeat(np.stack(f), int(seeds), axis=0) for f in fields))


def sweep_init_params(
    run: LinearRun, points: Sequence[Mapping[str, Any]], seeds: int, key: int | Array = 0
) -> tuple[np.ndarray, ...]:
    """The initial layers of every run of :func:`simulate_sweep` (same arguments): a tuple of
    (P * seeds, ...) numpy arrays, run r from ``fold_in(key, r)`` as in training."""
    stacked = _stacked_hypers(run, points, seeds)
    shape = _shape_of(run)
    base = as_key(key)

    def one(r, hp: Hyper[Array]) -> Params:
        k = streams(jax.random.fold_in(base, r)).init
        return _init(k, shape, hp.sigma_0, hp.balanced, hp.orthogonal)

    out = jax.jit(jax.vmap(one))(jnp.arange(stacked.m.shape[0]), stacked)
    return tuple(np.asarray(a) for a in out)
