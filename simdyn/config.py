"""Frozen, validated configuration for the data model, the encoder and training.

Every field is a plain Python value so a config is hashable, JSON-serialisable and can be closed
over by ``make_train`` (shape-determining fields must be static). Invalid values raise
:class:`ConfigError` naming the field, the value and the allowed range.

This module deliberately imports no JAX.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

NoiseModel = Literal["basis", "gaussian"]
Sampling = Literal["iid", "balanced"]
NoisePlacement = Literal["iid", "good_event"]
Augmentation = Literal["standard", "imperfect"]
LossName = Literal["scl", "ucl", "joint"]
Optimizer = Literal["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"]
# A representation's registered name or "auto"; the registry (simdyn.objectives) owns the names
# and their rules, so the config knows none of them.
Backend = str
DType = Literal["float32", "float64"]

_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")


class ConfigError(ValueError):
    """A user-supplied value (a config field, an argument, a path, a file) is not allowed.

    The message names the parameter and its allowed range or values. A subclass of
    ``ValueError``, so code that catches ``ValueError`` keeps working.

    Examples:
      >>> import simdyn
      >>> try:
      ...     simdyn.preset("fig2a").replace(lr=-1.0)
      ... except simdyn.ConfigError as error:
      ...     print(error)
      invalid train.lr=-1.0: must be in (0.0, inf)
      >>> issubclass(simdyn.ConfigError, ValueError)
      True
    """


class ResultFileError(ConfigError):
    """A result or checkpoint file cannot be used: unreadable, not a simdyn result,
    incomplete, or corrupted (its bytes or numbers differ from those it was written with).

    A subclass of :class:`ConfigError` (the file is bad input). :func:`simdyn.load` raises it;
    a missing file is a ``FileNotFoundError`` instead.

    Examples:
      >>> import pathlib, tempfile
      >>> import simdyn
      >>> with tempfile.TemporaryDirectory() as folder:
      ...     path = pathlib.Path(folder) / "notes.nc"
      ...     _ = path.write_text("not a simdyn result")
      ...     simdyn.load(path)
      Traceback (most recent call last):
        ...
      simdyn.config.ResultFileError: .../notes.nc is not a readable result file (...)
      >>> issubclass(simdyn.ResultFileError, simdyn.ConfigError)
      True
    """


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"invalid {name}={value!r}: must be {allowed}")


def _check_int(name: str, value: Any, lo: int, hi: float = math.inf) -> None:
    allowed = f"an integer in [{lo}, {hi}]" if math.isfinite(hi) else f"an integer >= {lo}"
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(name, value, allowed)
    if not lo <= value <= hi:
        _fail(name, value, allowed)


def _check_real(
    name: str, value: Any, lo: float, hi: float = math.inf, *, open_lo=False, open_hi=False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(name, value, "a real number")
    v = float(value)
    if not math.isfinite(v):
        _fail(name, value, "a finite real number")
    lo_ok = v > lo if open_lo else v >= lo
    hi_ok = v < hi if open_hi else v <= hi
    if not (lo_ok and hi_ok):
        lb = "(" if open_lo or math.isinf(lo) else "["
        rb = ")" if open_hi or math.isinf(hi) else "]"
        _fail(name, value, f"in {lb}{lo}, {hi}{rb}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(name, value, f"one of {choices}")


@dataclass(frozen=True)
class DataConfig:
    """The synthetic data model D_orig of Xue et al. (2023), section 3.1, and its augmentation.

    Attributes:
      n: number of original training examples.
      m: augmentations per original (training set size N = m * n).
      d: input dimension (the first K coordinates are features).
      K: number of features (v_1 class, v_2 subclass, v_3..v_K irrelevant); K >= 3.
      phi: feature strengths (phi_1, ..., phi_K), length K, each >= 0.
      mu: mean of the subclass coordinate (mu_2); all other means are 0.
      sigma_xi: noise scale.
      noise: ``basis`` (xi = sigma_xi e_j, j uniform over the d coordinates) or ``gaussian``
        (xi ~ N(0, sigma_xi^2 / d I)).
      sampling: ``iid`` labels, or ``balanced`` (enumerate the 8 (K - 2) combinations of
        (y, y_sub, k, rho) cyclically; exactly balanced iff 8 (K - 2) divides n, otherwise the
        remainder combinations are drawn without replacement).
      noise_placement: ``iid`` or ``good_event`` (basis noise only: the m n training noise
        coordinates are distinct and outside the feature block, the theorems' regime).
      augmentation: ``standard`` (A: fresh noise, features kept) or ``imperfect`` (A', Def. 5.3).
      aug_sigma_class, aug_sigma_sub: std of the class / subclass jitter of A' (both > 0 for A').
      aug_noise_rank: rank of Sigma_xi in A' (<= m / 2); 0 means every augmentation of an original
        keeps its noise xi exactly.
      aug_noise_scale: std of A''s noise perturbation inside its rank-``aug_noise_rank`` subspace.
      n_test: fresh test points drawn from D_orig for the linear probes (half fit, half score).

    Example:
      >>> import simdyn
      >>> data = simdyn.DataConfig(n=64, m=2, d=400, K=4, phi=(0.8, 1, 1, 1), mu=0.0)
      >>> data.K, data.phi
      (4, (0.8, 1.0, 1.0, 1.0))
    """

    n: int = 1000
    m: int = 5
    d: int = 2000
    K: int = 4
    phi: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    mu: float = 1.0
    sigma_xi: float = 2.0
    noise: NoiseModel = "basis"
    sampling: Sampling = "iid"
    noise_placement: NoisePlacement = "iid"
    augmentation: Augmentation = "standard"
    aug_sigma_class: float = 0.1
    aug_sigma_sub: float = 0.1
    aug_noise_rank: int = 0
    aug_noise_scale: float = 0.0
    n_test: int = 1000

    def __post_init__(self) -> None:
        object.__setattr__(self, "phi", tuple(float(x) for x in self.phi))
        _check_int("data.n", self.n, 1)
        _check_int("data.m", self.m, 1)
        _check_int("data.K", self.K, 3)
        _check_int("data.d", self.d, self.K)
        if len(self.phi) != self.K:
            _fail("data.phi", self.phi, f"a tuple of length K={self.K}")
        for j, s in enumerate(self.phi):
            _check_real(f"data.phi[{j}]", s, 0.0)
        _check_real("data.mu", self.mu, -math.inf, math.inf, open_lo=True, open_hi=True)
        _check_real("data.sigma_xi", self.sigma_xi, 0.0)
        _check_choice("data.noise", self.noise, ("basis", "gaussian"))
        _check_choice("data.sampling", self.sampling, ("iid", "balanced"))
        _check_choice("data.noise_placement", self.noise_placement, ("iid", "good_event"))
        _check_choice("data.augmentation", self.augmentation, ("standard", "imperfect"))
        if self.noise_placement == "good_event":
            if self.noise != "basis":
                _fail("data.noise_placement", self.noise_placement, "'iid' when noise='gaussian'")
            if self.m * self.n > self.d - self.K:
                _fail(
                    "data.noise_placement",
                    self.noise_placement,
                    f"'iid' unless m*n={self.m * self.n} <= d-K={self.d - self.K}",
                )
        if self.augmentation == "imperfect":
            _check_real("data.aug_sigma_class", self.aug_sigma_class, 0.0, open_lo=True)
            _check_real("data.aug_sigma_sub", self.aug_sigma_sub, 0.0, open_lo=True)
            _check_int("data.aug_noise_rank", self.aug_noise_rank, 0, self.m // 2)
            if self.aug_noise_rank > 0 and self.noise != "basis":
                _fail("data.aug_noise_rank", self.aug_noise_rank, "0 when noise='gaussian'")
            if self.aug_noise_rank > self.d - self.K:
                _fail("data.aug_noise_rank", self.aug_noise_rank, f"<= d-K={self.d - self.K}")
        _check_real("data.aug_noise_scale", self.aug_noise_scale, 0.0)
        _check_int("data.n_test", self.n_test, 4)

    @property
    def num_points(self) -> int:
        """N = m n, the number of augmented training points."""
        return self.m * self.n

    @property
    def num_combinations(self) -> int:
        """Number of (y, y_sub, k, rho) combinations: 2 * 2 * (K - 2) * 2."""
        return 8 * (self.K - 2)

    @property
    def exactly_balanced(self) -> bool:
        return self.sampling == "balanced" and self.n % self.num_combinations == 0

    @property
    def noise_nnz(self) -> int:
        """Non-zero noise coordinates per training point (sparse representation)."""
        if self.noise == "gaussian":
            return self.d
        extra = self.aug_noise_rank if self.augmentation == "imperfect" else 0
        return 1 + extra


@dataclass(frozen=True)
class ModelConfig:
    """The linear encoder f(x) = W x + b (section 3.3), folded into Theta = [b W] in R^{p x (d+1)}.

    Attributes:
      p: embedding dimension (>= 1; the paper assumes p >= 3).
      sigma_0: init scale; every entry of Theta_0 ~ N(0, sigma_0^2 / d).
      bias: learn b (else Theta[:, 0] is held at 0).

    Example:
      >>> import simdyn
      >>> simdyn.ModelConfig(p=5, sigma_0=0.01).p
      5
    """

    p: int = 3
    sigma_0: float = 0.001
    bias: bool = True

    def __post_init__(self) -> None:
        _check_int("model.p", self.p, 1)
        _check_real("model.sigma_0", self.sigma_0, 0.0)
        if not isinstance(self.bias, bool):
            _fail("model.bias", self.bias, "true or false")


@dataclass(frozen=True)
class TrainConfig:
    """Training: loss, optimiser, steps, batching, recording.

    Attributes:
      loss: ``scl``, ``ucl`` or ``joint`` (beta * SCL + (1 - beta) * UCL).
      beta: weight of SCL in the joint loss, in (0, 1); ignored otherwise.
      optimizer: an optax optimiser name; ``sgd`` with full batch is the paper's GD.
      lr: learning rate (eta), > 0.
      momentum: momentum for ``momentum`` / ``nesterov``.
      steps: number of optimiser steps (one full-batch step = one paper "epoch").
      batch_size: originals per minibatch; ``None`` means full-batch GD.
      fresh_augmentations: SGD only: redraw each batch original's augmentations every step
        (else use the fixed m augmentations).
      log_every: record metrics every this many steps (and at step 0).
      probe_every: linear-probe accuracies every this many steps (0 = only at the last step,
        -1 = never); must be a multiple of log_every.
      dtype: ``float32`` (default) or ``float64``.
      backend: ``auto`` (the registry picks: full batch, the exact representation with the
        lowest modelled cost per step; minibatch, the per-point form) or a representation's
        registered name (:func:`simdyn.objectives.names`). The registry validates it
        (:func:`simdyn.objectives.validate`), before any work.
      divergence_threshold: a seed whose loss or Theta becomes non-finite or |Theta| exceeds this
        is flagged as diverged (checked at every recorded step).
      save_theta: keep each seed's final Theta (p x (d + 1)) in the result.

    Example:
      >>> import simdyn
      >>> train = simdyn.TrainConfig(loss="joint", beta=0.25, lr=0.05, steps=200, batch_size=16)
      >>> train.loss, train.batch_size
      ('joint', 16)
    """

    loss: LossName = "scl"
    beta: float = 0.5
    optimizer: Optimizer = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    steps: int = 100
    batch_size: int | None = None
    fresh_augmentations: bool = False
    log_every: int = 1
    probe_every: int = 0
    dtype: DType = "float32"
    backend: Backend = "auto"
    divergence_threshold: float = 1e6
    save_theta: bool = False

    def __post_init__(self) -> None:
        _check_choice("train.loss", self.loss, ("scl", "ucl", "joint"))
        _check_real("train.beta", self.beta, 0.0, 1.0, open_lo=True, open_hi=True)
        _check_choice("train.optimizer", self.optimizer, _OPTIMIZERS)
        _check_real("train.lr", self.lr, 0.0, open_lo=True)
        _check_real("train.momentum", self.momentum, 0.0, 1.0, open_hi=True)
        _check_int("train.steps", self.steps, 1)
        if self.batch_size is not None:
            _check_int("train.batch_size", self.batch_size, 1)
        if not isinstance(self.fresh_augmentations, bool):
            _fail("train.fresh_augmentations", self.fresh_augmentations, "true or false")
        _check_int("train.log_every", self.log_every, 1, self.steps)
        if self.steps % self.log_every:
            _fail("train.log_every", self.log_every, f"a divisor of steps={self.steps}")
        _check_int("train.probe_every", self.probe_every, -1)
        if self.probe_every > 0 and (
            self.probe_every % self.log_every or self.steps % self.probe_every
        ):
            _fail(
                "train.probe_every",
                self.probe_every,
                f"0, -1 or a multiple of log_every={self.log_every} dividing steps={self.steps}",
            )
        _check_choice("train.dtype", self.dtype, ("float32", "float64"))
        if not isinstance(self.backend, str) or not self.backend:
            _fail("train.backend", self.backend, "'auto' or a registered representation's name")
        _check_real("train.divergence_threshold", self.divergence_threshold, 0.0, open_lo=True)
        if not isinstance(self.save_theta, bool):
            _fail("train.save_theta", self.save_theta, "true or false")

    @property
    def full_batch(self) -> bool:
        return self.batch_size is None

    @property
    def record_steps(self) -> tuple[int, ...]:
        """Steps at which alignment and loss are recorded: 0, log_every, ..., steps."""
        return tuple(range(0, self.steps + 1, self.log_every))

    @property
    def probe_steps(self) -> tuple[int, ...]:
        """Steps with linear-probe accuracies: 0, probe_every, ..., steps (0 -> {0, steps})."""
        if self.probe_every < 0:
            return ()
        every = self.probe_every or self.steps
        return tuple(range(0, self.steps + 1, every))


@dataclass(frozen=True)
class Config:
    """A complete simulation: data model, encoder and training.

    Frozen and validated: a value out of range, or sections that do not fit together, raise
    :class:`ConfigError` naming the field. :meth:`replace` changes fields by name.

    Attributes:
      data: the data model and augmentation (:class:`DataConfig`).
      model: the linear encoder (:class:`ModelConfig`).
      train: loss, optimiser, steps, batching and recording (:class:`TrainConfig`).

    Example:
      >>> import simdyn
      >>> config = simdyn.Config(model=simdyn.ModelConfig(p=4))
      >>> config.replace(lr=0.02, n=200).train.lr, config.model.p
      (0.02, 4)
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        t, dt = self.train, self.data
        if t.batch_size is not None and t.batch_size > dt.n:
            _fail("train.batch_size", t.batch_size, f"<= data.n={dt.n} (originals per batch)")
        if t.batch_size is None and t.fresh_augmentations:
            _fail("train.fresh_augmentations", True, "false for full-batch GD (batch_size=None)")

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"data", "model", "train"}
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(unknown)}: allowed are data, model, train"
            )
        parts: dict[str, Any] = {}
        for name, sub in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
            values = dict(d.get(name, {}))
            allowed = {f.name for f in fields(sub)}
            bad = set(values) - allowed
            if bad:
                raise ConfigError(
                    f"unknown field(s) {sorted(bad)} in {name}: allowed are {sorted(allowed)}"
                )
            if name == "data" and "phi" in values:
                values["phi"] = tuple(values["phi"])
            parts[name] = sub(**values)
        return cls(**parts)

    @classmethod
    def from_json(cls, s: str) -> Config:
        return cls.from_dict(json.loads(s))

    def replace(self, **overrides: Any) -> Config:
        """Return a copy with ``field=value`` overrides (unique names or dotted paths)."""
        return apply_overrides(self, overrides)


def _field_owners() -> dict[str, list[str]]:
    owners: dict[str, list[str]] = {}
    for section, sub in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
        for f in fields(sub):
            owners.setdefault(f.name, []).append(section)
    return owners


def _coerce(section: str, name: str, value: Any, current: Any) -> Any:
    """Parse a CLI string (or pass through a Python value) into the field's type."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "phi":
        parts = [s for s in text.strip("()[]").split(",") if s.strip()]
        try:
            return tuple(float(s) for s in parts)
        except ValueError:
            _fail(f"{section}.{name}", value, "a comma-separated list of numbers")
    if text.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        _fail(f"{section}.{name}", value, "true or false")
    if isinstance(current, int) or (current is None and name == "batch_size"):
        try:
            return int(text)
        except ValueError:
            _fail(f"{section}.{name}", value, "an integer")
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            _fail(f"{section}.{name}", value, "a real number")
    return text


def _suggest(name: str, known) -> str:
    """'did you mean ...?' with the closest known names, else the whole list."""
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return f"known: {sorted(known)}"


def apply_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Apply ``{"p": 5, "train.lr": "0.1", ...}``; names must be unique across sections or dotted.

    Derived consistency is kept: setting ``K`` alone resizes ``phi`` (repeating its last value).

    Args:
      config: the config to change (it is frozen and left as it is).
      overrides: ``{field: value}``; a field by its unique name (``p``, ``lr``) or dotted
        (``model.p``); a value as its type or as a string (``"0.1"``, ``"0.8,1,1"``), as
        ``--set`` passes it.

    Returns:
      A new validated :class:`Config`.

    Raises:
      ConfigError: an unknown field (with the closest names) or a value out of range.

    Example:
      >>> import simdyn
      >>> config = simdyn.apply_overrides(simdyn.preset("fig2a"), {"p": 5, "train.lr": "0.1"})
      >>> config.model.p, config.train.lr
      (5, 0.1)
    """
    owners = _field_owners()
    per_section: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for key, value in overrides.items():
        if "." in key:
            section, _, name = key.partition(".")
            if section not in per_section or section not in owners.get(name, []):
                dotted = [f"{s}.{n}" for n, ss in owners.items() for s in ss]
                raise ConfigError(f"unknown config field {key!r}; {_suggest(key, dotted)}")
        else:
            name = key
            if name not in owners:
                raise ConfigError(f"unknown config field {key!r}; {_suggest(name, owners)}")
            if len(owners[name]) > 1:
                raise ConfigError(
                    f"ambiguous field {key!r}: use one of {[f'{s}.{name}' for s in owners[name]]}"
                )
            section = owners[name][0]
        current = getattr(getattr(config, section), name)
        per_section[section][name] = _coerce(section, name, value, current)
    data_over = per_section["data"]
    if "K" in data_over and "phi" not in data_over:
        k_new = int(data_over["K"]) if not isinstance(data_over["K"], bool) else data_over["K"]
        old = config.data.phi
        if isinstance(k_new, int) and k_new >= 1:
            data_over["phi"] = tuple(old[:k_new]) + (old[-1],) * max(0, k_new - len(old))
    return replace(
        config,
        data=replace(config.data, **data_over),
        model=replace(config.model, **per_section["model"]),
        train=replace(config.train, **per_section["train"]),
    )
