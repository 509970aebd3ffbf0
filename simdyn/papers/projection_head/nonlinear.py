"""Nonlinear encoders with a head (Xue et al., ICLR 2024, Sec. 3.3, 4 and 6), trained through the
core loop and seed engine.

Models (``NonlinearRun.model``), all built from the symmetrized ReLU
s(a, b) = ReLU(a - b) - ReLU(-a - b) (:func:`soft_threshold`: odd in a, the identity at b = 0):

* ``"diagonal"`` (eq. 1, Thm 3.8): f_1(x) = s(w_1 * x, b_1), f_l(x) = s(w_l * f_{l-1}(x), b_l),
  w_l, b_l in R^d trainable, ``layers`` = L >= 1 (L = 2: encoder + head; L = 1: no head).
* ``"dense"`` (Figs 1, 2): the same s with full matrices, f_1(x) = s(W_1 x, b_1) (W_1: (p, d)),
  f_l(x) = s(W_l f_{l-1}(x), b_l) (W_l: (p, p)).
* ``"reweight"`` (Sec. 6): a trained encoder r = f_1(x) (``encoder="linear"``: W_1 x, or
  ``"srelu"``: s(W_1 x, b_1)) and the fixed head h(r) = [r_1, r_2 / kappa, ..., r_p /
  kappa^(p-1)] (never trained).

Losses (``loss``), on the last layer's output f = f_L:

* ``"cl"``: the spectral loss on positive pairs, -2 E[f(x+_1)^T f(x+_2)] + E[(f(A(x_1))^T
  f(A(x_2)))^2], x+_1, x+_2 two augmentations of one x (Def. 3.2: a re-drawn sign;
  ``augmentation="flip"`` is the appendix's sign FLIP, a near miss kept for controls);
* ``"scl"``: L_SCL on Def. 4.1 data, positives two independent inputs of one class y
  (``scl_positives="subclass"``: of one (y, y_sub) subclass, a near miss);
* ``"sl"``: L_SL = E[(f_L(x)^T 1 - y)^2] on Def. 4.1 data.

Forms (``form``):

* ``"sample"``: unbiased U-statistics on samples, on a finite training set drawn once per seed
  (``data="finite"``: n originals x m augmentations, or a balanced Def. 4.1 set; full batch or a
  minibatch of ``batch`` originals per step) or on ``n`` fresh draws every step
  (``data="fresh"``: SGD on the population loss; Def. 4.1 inputs drawn i.i.d.). Positives:
  ordered pairs of distinct augmentations of one original (cl) or distinct inputs of one class
  (scl, classes weighted equally); negatives: ordered pairs of points of distinct originals
  (cl) or of distinct inputs (scl). So E[sample loss] = population loss exactly
  (:func:`sample_loss`; tested by Monte Carlo).
* ``"population"`` (exact moments): for the diagonal network the loss splits by coordinate
  (Lemma A.4): f is odd per coordinate and the coordinates are independent and symmetric, so
  every cross-coordinate term of E[(f^T f')^2] has a zero factor E[g_i(x_i)] and, with
  g_i(t) = f_L(t e_i)_i and sigma = 0 (inputs +-phi_i),

      L_CL  = sum_i -2 c_i g_i(phi_i)^2 + g_i(phi_i)^4,   c_i = (1 - alpha_i)^2 (re-draw) or
                                                          (1 - 2 alpha_i)^2 (flip),
      L_SCL = the same with phi = (1, 1, rest, ...), c = (1, 0, 0, ...) (c_2 = 1: subclass
              positives),
      L_SL  = (g_1(1) - 1)^2 + sum_{i >= 2} g_i(phi_i)^2

  (:func:`coordinate_loss`; sigma > 0 is not implemented in this form: use the sample form).
  The reweighting head on a linear encoder uses the linear population loss of W = D W_1
  (:func:`simdyn.papers.projection_head.linear.population_loss`).

Training: (S)GD or momentum SGD (optax.sgd through :func:`simdyn.run_loop`), optional weight
decay (``weight_decay`` lambda adds lambda * theta to every trained parameter's gradient), and
masks that freeze parameters (``train_thresholds=False``, ``train_head=False``: near-miss
simulators). :func:`simulate` runs many seeds through :func:`simdyn.engine.run_per_seed`: seed
i's key is ``fold_in(key, i)`` (its streams: :func:`simdyn.seeds.streams`; init from ``init``,
a finite set from ``data``, minibatches / fresh draws from ``fold_in(batch, step)``, the probe
and evaluation sets from ``test``), so results do not depend on chunking.

Recorded per seed at every log step (:class:`Trajectory`):

* ``weights`` (R, L, d): ||f_l(e_i)||, the feature weight of layer l (input x = e_i);
* ``dims`` (R, L, q): per output dimension k of layer l, ||(f_l(e_1)_k, ..., f_l(e_d)_k)||
  (q = d for the diagonal network, p otherwise);
* ``params`` (R, 2, L, d): the diagonal network's (w, b) per layer ((R, 0) for other models);
* ``loss`` (R,): the objective (population form: exact; finite: on the whole training set;
  fresh: on one evaluation sample of n drawn from the test stream);
* ``probe`` (Q, L): a downstream linear probe per layer (:class:`Probe`; (0, L) without one).

Init (simdyn's choice, the paper leaves it open):

* diagonal, ``init="theorem"`` (Thm 3.8's conditions, for every coordinate): b_l = b0;
  |w_2| = sqrt(b0) U(w2_low, 1); |w_1| = b0 + b0 / |w_2| + spread U(1/4, 1) (so |w_2| <=
  sqrt(b0) and |w_2| (|w_1| - b0) > b0); uniform signs (``same_sign``: w_1 w_2 > 0). With
  L = 1 the layer-1 draw is the same. ``init="gaussian"``: w ~ N(0, sigma_0^2), b = b_init.
* dense: W_1 ~ N(0, sigma_0^2 / d), W_l ~ N(0, sigma_0^2 / p), b = b_init.
* reweight: W_1 ~ N(0, sigma_0^2 / d), b_1 = b_init.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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
from simdyn.papers.projection_head import data as phdata
from simdyn.papers.projection_head.linear import population_loss as linear_population_loss
from simdyn.seeds import as_key, step_key, streams

Array = jax.Array
# the arrays of a record: jax inside the traced per-seed program, numpy once the engine stacks them
A = TypeVar("A", jax.Array, np.ndarray)

MODELS = ("diagonal", "dense", "reweight")
LOSSES = ("cl", "scl", "sl")
FORMS = ("population", "sample")
DATA = ("fresh", "finite")


def _signs(key: Array, shape: tuple[int, ...], dtype) -> Array:
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(dtype)


def soft_threshold(a: Array, b: Array) -> Array:
    """s(a, b) = ReLU(a - b) - ReLU(-a - b), elementwise (odd in a; identity at b = 0)."""
    return jax.nn.relu(a - b) - jax.nn.relu(-a - b)


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A downstream linear probe per layer (ridge least squares on the layer's output plus a
    bias, predicting sign; accuracy on held-out points), drawn once per seed from its test
    stream.

    Args:
      task: ``"downstream"`` (Sec. 3.1.3: x_i uniform on +-phihat_i, label sign(x_j*)) or
        ``"subclass"`` (Def. 4.1 inputs of the run's d, label y_sub).
      phihat: (d,) downstream magnitudes (``"downstream"`` only).
      j_star: the downstream label's coordinate.
      n_train, n_test: labelled training / test points.
      noise: standard deviation of Gaussian noise added to the probe's inputs.
      ridge: the ridge, relative to the mean eigenvalue of the (bias-augmented) Gram matrix.
      every: probe at steps 0, every, ... (a multiple of the run's log_every; 0: last step only).
    """

    task: str = "downstream"
    phihat: tuple[float, ...] = ()
    j_star: int = 0
    n_train: int = 16
    n_test: int = 512
    noise: float = 0.0
    ridge: float = 1e-6
    every: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "phihat", tuple(float(v) for v in self.phihat))
        if self.task not in ("downstream", "subclass"):
            raise ConfigError(
                f"invalid Probe.task={self.task!r}: must be 'downstream' or 'subclass'"
            )
        if self.task == "downstream":
            if not self.phihat or not all(np.isfinite(self.phihat)):
                raise ConfigError("invalid Probe.phihat: a non-empty tuple of finite magnitudes")
            if not 0 <= self.j_star < len(self.phihat):
                raise ConfigError(
                    f"invalid Probe.j_star={self.j_star!r}: must be in [0, {len(self.phihat)})"
                )
        for name, lo in (("n_train", 2), ("n_test", 1), ("every", 0)):
            _check_int(f"Probe.{name}", getattr(self, name), lo)
        for name in ("noise", "ridge"):
            _check_nonneg(f"Probe.{name}", getattr(self, name))


def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ConfigError(f"invalid {name}={value!r}: must be an integer >= {lo}")


def _check_nonneg(name: str, value: Any, positive: bool = False) -> None:
    ok = isinstance(value, int | float | np.floating) and np.isfinite(value) and value >= 0
    if not ok or (positive and value == 0):
        what = "> 0" if positive else ">= 0"
        raise ConfigError(f"invalid {name}={value!r}: must be a finite number {what}")


@dataclass(frozen=True)
class NonlinearRun:
    """One training setting (static, hashable; see the module docs for every choice).

    Args:
      model: ``"diagonal"``, ``"dense"`` or ``"reweight"``.
      loss: ``"cl"``, ``"scl"`` or ``"sl"``.
      form: ``"population"`` (diagonal, or reweight with a linear encoder; sigma = 0 for the
        diagonal network) or ``"sample"``.
      data: ``"fresh"`` or ``"finite"`` (sample form only).
      phi, alpha: per-feature magnitudes and re-draw probabilities (loss ``"cl"``).
      sigma: augmentation noise standard deviation (``"cl"``).
      augmentation: ``"redraw"`` (Def. 3.2) or ``"flip"`` (the near miss).
      d_supervised: input dimension of Def. 4.1 data (``"scl"``, ``"sl"``), >= 2.
      rest_scale: magnitude of Def. 4.1's rest coordinates.
      scl_positives: ``"class"`` (L_SCL) or ``"subclass"`` (the near miss).
      n: originals per step (fresh) or in the training set (finite); a multiple of 4 for a
        finite Def. 4.1 set.
      m: augmentations per original (``"cl"``), >= 2.
      batch: originals per minibatch (finite data only); None: full batch.
      layers: L (diagonal: >= 1, <= 2 with the theorem init; dense: >= 1; reweight: 2).
      p: width (dense, reweight).
      kappa: the reweighting head's ratio, > 1 (reweight).
      encoder: ``"linear"`` or ``"srelu"`` (reweight).
      init: ``"theorem"`` or ``"gaussian"`` (diagonal).
      b0, w2_low, spread, same_sign: the theorem init (module docs).
      sigma_0: init scale (gaussian / dense / reweight). b_init: initial thresholds (idem).
      train_thresholds, train_head: False freezes the thresholds / the layers after the first.
      lr: step size, > 0. momentum: in [0, 1). weight_decay: lambda >= 0.
      steps: optimizer steps. log_every: record every this many steps (divides steps).
      probe: an optional :class:`Probe`.
      dtype: ``"float64"`` (needs 64-bit JAX) or ``"float32"``.
    """

    model: str = "diagonal"
    loss: str = "cl"
    form: str = "population"
    data: str = "fresh"
    phi: tuple[float, ...] = (1.0, 1.0)
    alpha: tuple[float, ...] = (0.0, 1.0)
    sigma: float = 0.0
    augmentation: str = "redraw"
    d_supervised: int = 5
    rest_scale: float = 1e-3
    scl_positives: str = "class"
    n: int = 64
    m: int = 2
    batch: int | None = None
    layers: int = 2
    p: int = 20
    kappa: float = 2.0
    encoder: str = "linear"
    init: str = "theorem"
    b0: float = 0.1
    w2_low: float = 0.5
    spread: float = 0.5
    same_sign: bool = False
    sigma_0: float = 0.1
    b_init: float = 0.0
    train_thresholds: bool = True
    train_head: bool = True
    lr: float = 0.05
    momentum: float = 0.0
    weight_decay: float = 0.0
    steps: int = 1000
    log_every: int = 10
    probe: Probe | None = None
    dtype: str = "float64"

    def __post_init__(self) -> None:
        object.__setattr__(self, "phi", tuple(float(v) for v in self.phi))
        object.__setattr__(self, "alpha", tuple(float(v) for v in self.alpha))
        choices = (
            ("model", MODELS),
            ("loss", LOSSES),
            ("form", FORMS),
            ("data", DATA),
            ("augmentation", ("redraw", "flip")),
            ("scl_positives", ("class", "subclass")),
            ("encoder", ("linear", "srelu")),
            ("init", ("theorem", "gaussian")),
            ("dtype", ("float32", "float64")),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"invalid {name}={getattr(self, name)!r}: must be one of {allowed}"
                )
        if self.loss == "cl":
            if not self.phi or len(self.alpha) != len(self.phi):
                raise ConfigError("invalid alpha: one value per feature of phi (non-empty)")
            if not all(np.isfinite(self.phi)):
                raise ConfigError(f"invalid phi={self.phi}: every value must be finite")
            if any(not 0.0 <= a <= 1.0 for a in self.alpha):
                raise ConfigError(f"invalid alpha={self.alpha}: every value must be in [0, 1]")
        else:
            _check_int("d_supervised", self.d_supervised, 2)
        for name, lo in (("n", 2), ("m", 2), ("layers", 1), ("p", 1), ("steps", 0)):
            _check_int(name, getattr(self, name), lo)
        _check_int("log_every", self.log_every, 1)
        if self.steps % self.log_every:
            raise ConfigError(f"invalid log_every={self.log_every}: must divide steps={self.steps}")
        for name in ("sigma", "rest_scale", "sigma_0", "weight_decay", "b0", "spread"):
            _check_nonneg(name, getattr(self, name))
        _check_nonneg("lr", self.lr, positive=True)
        if not isinstance(self.b_init, int | float) or not np.isfinite(self.b_init):
            raise ConfigError(f"invalid b_init={self.b_init!r}: must be a finite number")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"invalid momentum={self.momentum!r}: must be in [0, 1)")
        if not 0.0 < self.w2_low <= 1.0:
            raise ConfigError(f"invalid w2_low={self.w2_low!r}: must be in (0, 1]")
        if not (np.isfinite(self.kappa) and self.kappa >= 1.0):
            raise ConfigError(f"invalid kappa={self.kappa!r}: must be a finite number >= 1")
        if self.batch is not None:
            _check_int("batch", self.batch, 2)
            if self.data != "finite" or self.form != "sample" or self.batch > self.n:
                raise ConfigError(
                    f"invalid batch={self.batch!r}: minibatches need form='sample', "
                    f"data='finite' and batch <= n={self.n}"
                )
        if self.form == "population":
            if self.model == "dense" or (self.model == "reweight" and self.encoder != "linear"):
                raise ConfigError(
                    f"invalid form='population' for model={self.model!r}: the exact form exists "
                    "for the diagonal network and the reweighting head on a linear encoder"
                )
            if self.model == "diagonal" and self.sigma != 0.0:
                raise ConfigError(
                    f"invalid sigma={self.sigma!r} with form='population': the coordinate form "
                    "is implemented for sigma = 0 (use form='sample')"
                )
            if self.model == "reweight" and self.loss != "cl":
                raise ConfigError("invalid loss for the reweight population form: must be 'cl'")
        if self.loss != "cl" and self.data == "finite" and self.form == "sample" and self.n % 4:
            raise ConfigError(f"invalid n={self.n}: a finite Def. 4.1 set needs a multiple of 4")
        if self.model == "reweight" and self.layers != 2:
            raise ConfigError(f"invalid layers={self.layers}: the reweight model has 2 layers")
        if self.model == "diagonal" and self.init == "theorem" and self.layers > 2:
            raise ConfigError(f"invalid layers={self.layers}: the theorem init needs layers <= 2")
        if self.model == "reweight" and not self.train_head:
            raise ConfigError("invalid train_head=False for reweight: its head is never trained")
        if (
            self.probe is not None
            and self.probe.every
            and (self.probe.every % self.log_every or self.steps % self.probe.every)
        ):
            raise ConfigError(
                f"invalid probe.every={self.probe.every}: must be a multiple of "
                f"log_every={self.log_every} dividing steps={self.steps}"
            )
        if self.dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ConfigError("dtype='float64' needs 64-bit JAX: call simdyn.enable_x64() first")

    @property
    def d(self) -> int:
        """The input dimension."""
        return len(self.phi) if self.loss == "cl" else self.d_supervised

    @property
    def width(self) -> int:
        """Output width q of every layer (d for the diagonal network, p otherwise)."""
        return self.d if self.model == "diagonal" else self.p


class Hyper(NamedTuple):
    """Traced per-run hyper-parameters (override the run's b0 and kappa)."""

    b0: Any
    kappa: Any


class Trajectory(NamedTuple, Generic[A]):
    """One seed's record (R log steps, Q probe steps); see the module docs."""

    weights: A  # (R, L, d)
    dims: A  # (R, L, q)
    params: A  # (R, 2, L, d) diagonal; (R, 0) otherwise
    loss: A  # (R,)
    probe: A  # (Q, L)
    diverged: A  # ()
    diverged_step: A  # ()


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

Params = dict[str, Any]


def head_scales(kappa: Any, p: int, dtype=jnp.float64) -> Array:
    """The fixed reweighting head's diagonal (1, 1/kappa, ..., 1/kappa^(p-1)), (p,)."""
    return jnp.asarray(kappa, dtype) ** -jnp.arange(p, dtype=dtype)


def layer_outputs(run: NonlinearRun, params: Params, x: Array, kappa: Any = None) -> list[Array]:
    """[f_1(x), ..., f_L(x)] for inputs x (..., d); each (..., q)."""
    outs = []
    if run.model == "diagonal":
        h = x
        for w, b in zip(params["w"], params["b"], strict=True):
            h = soft_threshold(w * h, b)
            outs.append(h)
    elif run.model == "dense":
        h = x
        for w, b in zip(params["w"], params["b"], strict=True):
            h = soft_threshold(h @ w.T, b)
            outs.append(h)
    else:
        (w1,) = params["w"]
        r = x @ w1.T
        if run.encoder == "srelu":
            r = soft_threshold(r, params["b"][0])
        kappa = run.kappa if kappa is None else kappa
        outs = [r, r * head_scales(kappa, run.p, r.dtype)]
    return outs


def init_params(key: Array, run: NonlinearRun, b0: Any = None) -> Params:
    """One seed's initial parameters (module docs): {"w": (...), "b": (...)} per layer."""
    dtype = jnp.dtype(run.dtype)
    b0 = run.b0 if b0 is None else b0
    d, p, L = run.d, run.p, run.layers
    if run.model == "diagonal" and run.init == "theorem":
        k_u, k_s, k_s1, k_s2 = jax.random.split(key, 4)
        u = jnp.sqrt(b0) * jax.random.uniform(k_u, (d,), dtype, run.w2_low, 1.0)
        w1_abs = b0 + b0 / u + run.spread * jax.random.uniform(k_s, (d,), dtype, 0.25, 1.0)
        s1 = _signs(k_s1, (d,), dtype)
        s2 = s1 if run.same_sign else _signs(k_s2, (d,), dtype)
        w = (s1 * w1_abs, s2 * u)[:L]
        b = tuple(jnp.full((d,), b0, dtype) for _ in range(L))
        return {"w": w, "b": b}
    keys = jax.random.split(key, L)
    if run.model == "diagonal":
        w = tuple(run.sigma_0 * jax.random.normal(k, (d,), dtype) for k in keys)
        b = tuple(jnp.full((d,), run.b_init, dtype) for _ in range(L))
        return {"w": w, "b": b}
    if run.model == "dense":
        w = tuple(
            run.sigma_0
            / np.sqrt(d if i == 0 else p)
            * jax.random.normal(k, (p, d if i == 0 else p), dtype)
            for i, k in enumerate(keys)
        )
        b = tuple(jnp.full((p,), run.b_init, dtype) for _ in range(L))
        return {"w": w, "b": b}
    w1 = run.sigma_0 / np.sqrt(d) * jax.random.normal(keys[0], (p, d), dtype)
    return {"w": (w1,), "b": (jnp.full((p,), run.b_init, dtype),)}


def trainable_mask(run: NonlinearRun, params: Params) -> Params:
    """1 where a parameter is trained, 0 where it is frozen (same tree as params)."""
    w = tuple(
        jnp.ones_like(a) if (i == 0 or run.train_head) else jnp.zeros_like(a)
        for i, a in enumerate(params["w"])
    )
    b = tuple(
        jnp.ones_like(a)
        if run.train_thresholds and (i == 0 or run.train_head)
        else jnp.zeros_like(a)
        for i, a in enumerate(params["b"])
    )
    if run.model == "reweight" and run.encoder == "linear":
        b = tuple(jnp.zeros_like(a) for a in params["b"])  # the linear encoder has no threshold
    return {"w": w, "b": b}


def feature_weights(run: NonlinearRun, params: Params, kappa: Any = None) -> tuple[Array, Array]:
    """(weights (L, d), dims (L, q)): ||f_l(e_i)|| and the per-output-dimension norms."""
    eye = jnp.eye(run.d, dtype=jnp.dtype(run.dtype))
    maps = jnp.stack(layer_outputs(run, params, eye, kappa))  # (L, d inputs, q)
    return jnp.linalg.norm(maps, axis=2), jnp.linalg.norm(maps, axis=1)


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


class Batch(NamedTuple):
    """A sample: x (n, m, d) augmentations (cl) or (n, 1, d) inputs (scl, sl); labels (n,) the
    positives' class index (scl; the original's index for cl); y (n,) the regression target."""

    x: Array
    labels: Array
    y: Array


def sample_supervised_iid(key: Array, n: int, d: int, rest_scale: float, dtype) -> phdata.Labelled:
    """Def. 4.1 inputs drawn i.i.d. (y, y_sub independent uniform signs; the rest uniform on
    +-rest_scale): the fresh-sample counterpart of :func:`~simdyn.papers.projection_head.data.
    sample_supervised`, whose finite sets are exactly balanced."""
    k_y, k_rest = jax.random.split(key)
    lab = _signs(k_y, (n, 2), dtype)
    rest = rest_scale * _signs(k_rest, (n, d - 2), dtype)
    return phdata.Labelled(jnp.concatenate([lab, rest], axis=1), lab[:, 0], lab[:, 1])


def draw(run: NonlinearRun, key: Array, n: int, balanced: bool) -> Batch:
    """n originals of the run's data (balanced: Def. 4.1's exactly balanced sampler)."""
    dtype = jnp.dtype(run.dtype)
    if run.loss == "cl":
        k_x, k_a = jax.random.split(key)
        x = phdata.sample_inputs(k_x, n, run.phi, dtype)
        aug = phdata.augment if run.augmentation == "redraw" else phdata.augment_flip
        views = [aug(jax.random.fold_in(k_a, j), x, run.alpha, run.sigma) for j in range(run.m)]
        idx = jnp.arange(n)
        return Batch(jnp.stack(views, axis=1), idx, jnp.zeros((n,), dtype))
    if balanced:
        lab = phdata.sample_supervised(key, n, run.d, run.rest_scale, dtype)
    else:
        lab = sample_supervised_iid(key, n, run.d, run.rest_scale, dtype)
    if run.scl_positives == "class":
        labels = (lab.y > 0).astype(jnp.int32)
    else:
        labels = 2 * (lab.y > 0).astype(jnp.int32) + (lab.y_sub > 0).astype(jnp.int32)
    return Batch(lab.x[:, None, :], labels, lab.y)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def _outer_sum(a: Array, b: Array) -> Array:
    """sum_n a_n b_n^T for a (N, P), b (N, Q): (P, Q), written as a broadcast product and a
    one-axis sum (not a dot): its summation order does not change under vmap, so the per-seed
    function and the engine's batched program agree bit for bit."""
    return jnp.sum(a[:, :, None] * b[:, None, :], axis=0)


def _frobenius2(x: Array) -> Array:
    """||x||_F^2 of the last two axes, one axis at a time (vmap-stable, see _outer_sum)."""
    return jnp.sum(jnp.sum(x**2, axis=-1), axis=-1)


def _negatives(emb: Array) -> Array:
    """Mean of (f_a^T f_b)^2 over ordered pairs of points of distinct originals (rows of emb,
    (n, m, q)): (||sum f f^T||_F^2 - sum_a ||F_a^T F_a||_F^2) / (m^2 n (n - 1))."""
    n, m, q = emb.shape
    flat = emb.reshape((n * m, q))
    total = _frobenius2(_outer_sum(flat, flat))
    per = jnp.sum(emb[:, :, :, None] * emb[:, :, None, :], axis=1)  # (n, q, q)
    same = jnp.sum(_frobenius2(per))
    return (total - same) / (m * m * n * (n - 1))


def _positives_within(emb: Array) -> Array:
    """Mean over originals of the mean f^T f+ over ordered pairs of distinct augmentations."""
    n, m, q = emb.shape
    sums = jnp.sum(emb, axis=1)  # (n, q)
    sq = jnp.sum(jnp.sum(emb**2, axis=2), axis=1)  # (n,)
    return jnp.mean((jnp.sum(sums**2, axis=1) - sq) / (m * (m - 1)))


def _positives_by_label(flat: Array, labels: Array, num: int) -> Array:
    """Mean over labels present at least twice (equal weights) of the mean f_a^T f_b over
    ordered pairs of distinct points with that label. flat (N, q)."""
    onehot = jax.nn.one_hot(labels, num, dtype=flat.dtype)  # (N, G)
    sums = _outer_sum(onehot, flat)  # (G, q)
    sq = jnp.sum(onehot * jnp.sum(flat**2, axis=1)[:, None], axis=0)  # (G,)
    counts = jnp.sum(onehot, axis=0)
    pair_counts = counts * (counts - 1)
    per = (jnp.sum(sums**2, axis=1) - sq) / jnp.maximum(pair_counts, 1.0)
    present = (pair_counts > 0).astype(flat.dtype)
    return jnp.sum(per * present) / jnp.maximum(jnp.sum(present), 1.0)


def sample_loss(run: NonlinearRun, emb: Array, batch: Batch) -> Array:
    """The unbiased sample loss of the last layer's embeddings emb (n, m', q) (module docs)."""
    if run.loss == "sl":
        return jnp.mean((jnp.sum(emb[:, 0, :], axis=1) - batch.y) ** 2)
    if run.loss == "cl":
        return -2.0 * _positives_within(emb) + _negatives(emb)
    num = 2 if run.scl_positives == "class" else 4
    return -2.0 * _positives_by_label(emb[:, 0, :], batch.labels, num) + _negatives(emb)


def positive_weights(run: NonlinearRun) -> np.ndarray:
    """c_i of the coordinate form: E[sign agreement of a positive pair] per coordinate."""
    if run.loss == "cl":
        a = np.asarray(run.alpha)
        return (1.0 - a) ** 2 if run.augmentation == "redraw" else (1.0 - 2.0 * a) ** 2
    c = np.zeros(run.d)
    c[0] = 1.0
    if run.scl_positives == "subclass":
        c[1] = 1.0
    return c


def coordinate_inputs(run: NonlinearRun) -> np.ndarray:
    """The magnitudes each coordinate takes (sigma = 0): phi, or (1, 1, rest, ...)."""
    if run.loss == "cl":
        return np.asarray(run.phi)
    return np.array([1.0, 1.0] + [run.rest_scale] * (run.d - 2))


def coordinate_loss(run: NonlinearRun, params: Params) -> Array:
    """Lemma A.4's coordinate form of the diagonal network's population loss (sigma = 0)."""
    dtype = jnp.dtype(run.dtype)
    g = layer_outputs(run, params, jnp.asarray(coordinate_inputs(run), dtype))[-1]  # (d,)
    if run.loss == "sl":
        return (g[0] - 1.0) ** 2 + jnp.sum(g[1:] ** 2)
    c = jnp.asarray(positive_weights(run), dtype)
    return jnp.sum(-2.0 * c * g**2 + g**4)


def population_moments(run: NonlinearRun) -> tuple[np.ndarray, np.ndarray]:
    """diag(M), diag(M+) of the run's augmentation (Def. 3.2, or the flip near miss)."""
    phi = np.asarray(run.phi)
    return phi**2 + run.sigma**2, positive_weights(run) * phi**2


def population_loss(run: NonlinearRun, params: Params, kappa: Any = None) -> Array:
    """The exact population loss (diagonal: :func:`coordinate_loss`; reweight: linear)."""
    if run.model == "diagonal":
        return coordinate_loss(run, params)
    dtype = jnp.dtype(run.dtype)
    m, mp = population_moments(run)
    kappa = run.kappa if kappa is None else kappa
    head = jnp.diag(head_scales(kappa, run.p, dtype))
    return linear_population_loss(
        (params["w"][0], head), jnp.asarray(m, dtype), jnp.asarray(mp, dtype)
    )


def batch_loss(run: NonlinearRun, params: Params, batch: Batch, kappa: Any = None) -> Array:
    """The sample loss of params on a batch."""
    emb = layer_outputs(run, params, batch.x, kappa)[-1]
    return sample_loss(run, emb, batch)


# --------------------------------------------------------------------------------------------
# Probe
# --------------------------------------------------------------------------------------------


def _probe_data(probe: Probe, run: NonlinearRun, key: Array, n: int) -> tuple[Array, Array]:
    dtype = jnp.dtype(run.dtype)
    k_x, k_noise = jax.random.split(key)
    if probe.task == "downstream":
        lab = phdata.sample_downstream(k_x, n, probe.phihat, probe.j_star, dtype)
        y = lab.y
    else:
        lab = sample_supervised_iid(k_x, n, run.d, run.rest_scale, dtype)
        y = lab.y_sub
    x = lab.x + probe.noise * jax.random.normal(k_noise, lab.x.shape, dtype)
    return x, y


def probe_accuracy(reps_train: Array, y_train: Array, reps_test: Array, y_test: Array,
                   ridge: float) -> Array:  # fmt: skip
    """Ridge least-squares linear classifier (with bias) on (n, q) representations: the test
    accuracy of sign(z^T w) (a zero prediction counts as wrong)."""
    z = jnp.concatenate([reps_train, jnp.ones_like(reps_train[:, :1])], axis=1)
    zt = jnp.concatenate([reps_test, jnp.ones_like(reps_test[:, :1])], axis=1)
    gram = z.T @ z
    scale = jnp.trace(gram) / gram.shape[0]
    w = safe_linalg.solve(gram + (ridge * scale + 1e-300) * jnp.eye(gram.shape[0], dtype=z.dtype),
                         z.T @ y_train)  # fmt: skip
    return jnp.mean((zt @ w) * y_test > 0)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _hyper(run: NonlinearRun, hp: Hyper | None) -> tuple[Any, Any]:
    if hp is None:
        return run.b0, run.kappa
    return hp.b0, hp.kappa


def make_train(run: NonlinearRun) -> Callable[[Array, Hyper | None], Trajectory[Array]]:
    """``train(seed_key, hyper) -> Trajectory`` for one seed (pure, jit- and vmap-compatible);
    ``hyper`` a :class:`Hyper` of traced scalars, or None for the run's own b0 and kappa."""
    dtype = jnp.dtype(run.dtype)
    optimizer = optax.sgd(run.lr, momentum=run.momentum or None)
    balanced = run.data == "finite"
    L = run.layers

    def train(seed_key: Array, hp: Hyper | None = None) -> Trajectory[Array]:
        b0, kappa = _hyper(run, hp)
        keys = streams(seed_key)
        params0 = init_params(keys.init, run, b0)
        mask = trainable_mask(run, params0)

        if run.form == "population":

            def objective(params):
                return population_loss(run, params, kappa)

            def raw_grad(params, step):
                return jax.grad(objective)(params)
        else:
            if run.data == "finite":
                full = draw(run, keys.data, run.n, balanced)
            else:
                full = draw(run, keys.test, run.n, balanced=False)  # the evaluation sample

            def objective(params):
                return batch_loss(run, params, full, kappa)

            def raw_grad(params, step):
                k = step_key(keys.batch, step)
                if run.data == "fresh":
                    b = draw(run, k, run.n, balanced=False)
                elif run.batch is None:
                    b = full
                else:
                    idx = jax.random.choice(k, run.n, (run.batch,), replace=False)
                    b = jax.tree.map(lambda a: a[idx], full)
                return jax.grad(lambda th: batch_loss(run, th, b, kappa))(params)

        def direction(params, step):
            g = raw_grad(params, step)
            if run.weight_decay:
                g = jax.tree.map(lambda a, th: a + run.weight_decay * th, g, params)
            return jax.tree.map(lambda a, msk: a * msk, g, mask)

        def weights(params, _ctx):
            return feature_weights(run, params, kappa)[0]

        def dims(params, _ctx):
            return feature_weights(run, params, kappa)[1]

        def diag_params(params, _ctx):
            return jnp.stack([jnp.stack(params["w"]), jnp.stack(params["b"])])

        observables = {"weights": weights, "dims": dims}
        if run.model == "diagonal":
            observables["params"] = diag_params
        probes: dict[str, Callable] = {}
        probe_every = None
        if run.probe is not None:
            pr = run.probe
            k_tr, k_te = jax.random.split(jax.random.fold_in(keys.test, 1))
            x_tr, y_tr = _probe_data(pr, run, k_tr, pr.n_train)
            x_te, y_te = _probe_data(pr, run, k_te, pr.n_test)

            def probe(params, _ctx):
                tr = layer_outputs(run, params, x_tr, kappa)
                te = layer_outputs(run, params, x_te, kappa)
                return jnp.stack([probe_accuracy(a, y_tr, b, y_te, pr.ridge)
                                  for a, b in zip(tr, te, strict=True)])  # fmt: skip

            probes = {"probe": probe}
            probe_every = pr.every or max(run.steps, run.log_every)
        record = Record(
            every=run.log_every, observables=observables, probes=probes, probe_every=probe_every
        )
        out = run_loop(
            params0, direction, optimizer, steps=run.steps, record=record, loss=objective
        )
        probe_out = out.probed.get("probe", jnp.zeros((0, L), dtype))
        rows = out.loss.shape[0]
        return Trajectory(
            out.observed["weights"],
            out.observed["dims"],
            out.observed.get("params", jnp.zeros((rows, 0), dtype)),
            out.loss,
            probe_out.astype(dtype),
            out.diverged,
            out.diverged_step,
        )

    return train


_train_of = functools.lru_cache(maxsize=32)(make_train)  # one function object per run


def train_function(run: NonlinearRun) -> Callable[[Array, Hyper | None], Trajectory[Array]]:
    """The cached per-seed function of ``run`` (the engine caches its program by identity)."""
    return _train_of(run)


def simulate(
    run: NonlinearRun,
    seeds: int | np.ndarray = 16,
    key: int | Array = 0,
    *,
    b0: Any = None,
    kappa: Any = None,
    chunk_size: int = 256,
) -> Trajectory[np.ndarray]:
    """Train seeds of ``run`` (seed i: ``fold_in(key, i)``); stacked numpy results with a leading
    seed axis.

    Args:
      run: the setting.
      seeds: the number of seeds (seeds 0..S-1), or an array of distinct seed indices.
      key: base PRNG key (or int).
      b0, kappa: optional per-seed values (arrays of the seeds' length) or scalars overriding
        the run's (traced: one compiled program serves every value).
      chunk_size: seeds per compiled call (results do not depend on it).

    Returns:
      :class:`Trajectory` of (S, ...) numpy arrays.
    """
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"invalid seeds={seeds!r}: must be an integer >= 1")
        idx = np.arange(int(seeds))
    elif isinstance(seeds, bool):
        raise ConfigError(f"invalid seeds={seeds!r}: must be an integer >= 1")
    else:
        idx = np.asarray(seeds, np.int64)
        if idx.ndim != 1 or idx.size == 0 or np.any(idx < 0) or np.unique(idx).size != idx.size:
            raise ConfigError("invalid seeds: a non-empty 1-d array of distinct indices >= 0")
    _check_int("chunk_size", chunk_size, 1)
    dtype = np.dtype(run.dtype)
    hp = None
    if b0 is not None or kappa is not None:
        b0_arr = np.broadcast_to(np.asarray(run.b0 if b0 is None else b0, dtype), idx.shape)
        k_arr = np.broadcast_to(np.asarray(run.kappa if kappa is None else kappa, dtype), idx.shape)
        if np.any(~np.isfinite(b0_arr)) or np.any(b0_arr < 0):
            raise ConfigError("invalid b0: every value must be finite and >= 0")
        if np.any(~np.isfinite(k_arr)) or np.any(k_arr < 1):
            raise ConfigError("invalid kappa: every value must be finite and >= 1")
        hp = Hyper(np.ascontiguousarray(b0_arr), np.ascontiguousarray(k_arr))
    out, _ = run_per_seed(
        train_function(run),
        as_key(key),
        idx,
        hp,
        per_run_hparams=hp is not None,
        chunk_size=int(chunk_size),
        devices=1,
    )
    return cast("Trajectory[np.ndarray]", out)  # the engine stacks the seeds' records in numpy
