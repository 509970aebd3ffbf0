"""Named configurations for the paper's figures (Xue et al. 2023, section 7 of THEORY.md).

Settings printed in the paper are used as printed. Choices for what the paper leaves out:

* Fig. 1/2/6 sample labels i.i.d. (n = 1000 is not a multiple of the 16 label combinations for
  K = 4) and place noise i.i.d. (d = 2000 < m n = 5000, so the good event cannot hold).
* Fig. 4 (n, m, sigma_xi, eta, sigma_0 not given): exactly balanced originals (n a multiple of
  8 (K - 2)), m = 2, sigma_xi = 1, the good event (m n <= d - K), sigma_0 = 0.001, eta = 0.05,
  3000 GD steps; phi_K^2 / (K - 2) = 0.3 here and swept by the experiment.
* joint: an instance satisfying the JOINT conditions of Thm 6.1 (K = 4, p = 4, phi_1 = 0.5:
  phi_1^2 = 0.25 is not among the top p of L = [1, .25, 1, .5, .5]; phi_2^2 = 1 is the largest of
  {phi_2^2, phi_k^2 / (K - 2)}), mu = 0, beta = 0.5, balanced good-event data.
* Presets log every step (the paper's plots use a log step axis) and probe at 0 and the end.
"""

from __future__ import annotations

from simdyn.config import Config, ConfigError, DataConfig, ModelConfig, TrainConfig

_FIG1_DATA = DataConfig(n=1000, m=5, d=2000, K=4, phi=(1.0, 1.0, 1.0, 1.0), mu=1.0, sigma_xi=2.0)
_FIG1_MODEL = ModelConfig(p=3, sigma_0=0.001)
_FIG1_TRAIN = TrainConfig(loss="scl", optimizer="sgd", lr=0.05, steps=100, log_every=1)


def fig4_config(k: int, n: int, phi_k_sq: float = 0.3) -> Config:
    """The Fig. 4 UCL setting with K = p = ``k`` and ``n`` balanced originals.

    Args:
      k: the number of features K, also the embedding dimension p (>= 3).
      n: balanced originals (a multiple of 8 (K - 2) for exact balance; m = 2 views each).
      phi_k_sq: the figure's x axis phi_k^2 / (K - 2); the K - 2 irrelevant features' strength
        is set to match it.

    Returns:
      A :class:`simdyn.Config`: UCL, full-batch GD, good-event basis noise (module docstring).

    Examples:
      >>> import simdyn
      >>> config = simdyn.fig4_config(3, 96, phi_k_sq=0.5)
      >>> config.train.loss, config.model.p, config.data.phi
      ('ucl', 3, (0.8, 1.0, 0.7071067811865476))
    """
    phi_irr = (phi_k_sq * (k - 2)) ** 0.5
    data = DataConfig(
        n=n,
        m=2,
        d=2000,
        K=k,
        phi=(0.8, 1.0) + (phi_irr,) * (k - 2),
        mu=0.0,
        sigma_xi=1.0,
        sampling="balanced",
        noise_placement="good_event",
    )
    return Config(
        data,
        ModelConfig(p=k, sigma_0=0.001),
        TrainConfig(loss="ucl", lr=0.05, steps=3000, log_every=10),
    )


PRESETS: dict[str, Config] = {
    "fig1": Config(_FIG1_DATA, _FIG1_MODEL, _FIG1_TRAIN),
    "fig2a": Config(_FIG1_DATA, _FIG1_MODEL, TrainConfig(loss="scl", lr=0.05, steps=500)),
    "fig2b": Config(
        _FIG1_DATA, ModelConfig(p=500, sigma_0=0.001), TrainConfig(loss="scl", lr=0.05, steps=500)
    ),
    "fig4a": fig4_config(3, 96),
    "fig4b": fig4_config(50, 384),
    "fig6": Config(_FIG1_DATA, _FIG1_MODEL, TrainConfig(loss="scl", lr=0.05, steps=500)),
    "joint": Config(
        DataConfig(
            n=160,
            m=2,
            d=2000,
            K=4,
            phi=(0.5, 1.0, 1.0, 1.0),
            mu=0.0,
            sigma_xi=1.0,
            sampling="balanced",
            noise_placement="good_event",
        ),
        ModelConfig(p=4, sigma_0=0.001),
        TrainConfig(loss="joint", beta=0.5, lr=0.05, steps=3000, log_every=10),
    ),
}


def preset(name: str) -> Config:
    """A named preset config (see the module docstring for the choices made).

    Args:
      name: one of :data:`simdyn.PRESETS` (``simdyn presets`` lists them): ``fig1``, ``fig2a``,
        ``fig2b``, ``fig4a``, ``fig4b``, ``fig6``, ``joint``.

    Returns:
      The preset's :class:`simdyn.Config`; ``.replace(field=value)`` changes it.

    Raises:
      ConfigError: an unknown name (the message lists the known ones).

    Examples:
      >>> import simdyn
      >>> config = simdyn.preset("fig2a")
      >>> config.train.loss, config.model.p, config.data.n
      ('scl', 3, 1000)
      >>> config.replace(p=5).model.p
      5
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}") from None
