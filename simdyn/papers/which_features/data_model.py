"""DATA (simdyn's data model): every sampled instance is the configured D_orig, checked against
values derived from the CONFIG, never from the sample itself.

Every other row compares GD/SGD runs with closed forms of the SAME sampled instance, so a fault
in data generation that the sample carries into both sides (a feature scale, a noise value, an
unbalanced label set, two seeds sharing one instance) leaves them all unchanged. This row checks
the sampler (:func:`simdyn.papers.which_features.instances.sample_instances`, the sampler the runs
use) and the
minibatch sampler of SGD (:func:`simdyn.data.draw_minibatch`) on their own, against the data
model's definition (Xue et al. 2023, section 3.1; Def. 5.3 for A'; simdyn's SGD batching):

Exact sub-tests (hold only with zero failing instances; the statements are definitions):

* ``features``: every point's and original's feature block equals u~ recomputed here from its
  labels and the config: [1, y phi_1, y_sub phi_2 + mu, rho phi_k at coordinate k], labels in
  range (y, y_sub, rho = +-1, k in 3..K). Tolerance 4 eps |u~| (one product and one sum).
* ``basis-noise``: basis noise values equal sigma_xi; coordinates in [1, d]; under the good
  event's placement the m n training coordinates are distinct and in [K+1, d] (the design's d
  is tight, d = K + m n + 3, so an off-by-one range shows on almost every instance).
* ``balanced-labels``: balanced sampling gives each of the 8 (K-2) combinations of (y, y_sub,
  rho, k) floor(n / c) or ceil(n / c) times.
* ``distinct-instances``: no two seeds share a training set (under the key protocol two seeds'
  basis-noise coordinates coincide with probability <= d^-(m n); a collision of seed streams
  makes the verifier's units dependent and every p-value wrong).
* ``minibatches``: SGD draws ``batch_size`` DISTINCT originals (each once, with its own fixed
  views), and fresh augmentations differ between two steps' keys.

Distributional sub-tests (population values from the config; mean equivalence tests over
independent instances, :func:`simdyn.verify.stats.mean_test`):

* ``boundary-coordinates``: i.i.d. basis noise hits coordinate 1 and coordinate d each with
  frequency 1/d: per instance, count x d / draws has mean 1, tested in [1 - BOUNDARY_MARGIN,
  1 + BOUNDARY_MARGIN] (an off-by-one range drops a boundary coordinate: mean 0).
* ``iid-labels``: i.i.d. labels put the irrelevant feature at k = 3 and at k = K each with
  frequency 1/(K-2) (same form).
* ``gaussian-noise``: Gaussian noise entries have variance sigma_xi^2 / d: per instance the mean
  of val^2 d / sigma_xi^2, tested in 1 +- VARIANCE_MARGIN.
* ``imperfect-jitter``: A' class and subclass jitter have variances aug_sigma_class^2 and
  aug_sigma_sub^2, its noise-subspace entries aug_noise_scale^2 (same form).

Derivation of the margins (chosen for power after Holm at the small design, 60 instances):
a per-instance variance ratio averages n m chi^2_1 / (n m) values, standard deviation
sqrt(2 / (n m)) = 0.125 at A''s n m = 128, so the mean over 60 instances has se ~0.016 and the
margin 0.1 is ~6 se (a true ratio holds after Holm); a 10% scale slip (ratio 1.21) lies 0.11 =
6.8 se beyond it and fails. (At n m = 64 the se was 0.023 and the catch matrix's 1.1 class
jitter came out inconclusive at the small size: 3.4 se beyond the margin is not enough after
Holm over ~50 p-values.) The Gaussian design's d n m = 1600 entries per instance make its se
~0.005 (margin 0.05). Boundary frequencies: 192 draws on d = 12 give se ~0.24 per instance,
~0.03 over 60; margin 0.2.

Negative controls (near misses that must fail): the exact checks against a config with phi_1
and sigma_xi 2% off, and the variance checks against a ratio 1.2.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from simdyn.config import DataConfig
from simdyn.verify.claim import Row, RowText, Rule
from simdyn.verify.stats import TestResult, exact_test, mean_test

SEED_OFFSET = 1_000_000  # this row's seed indices: never those of the claim's own draws
VARIANCE_MARGIN = 0.1
GAUSSIAN_MARGIN = 0.05
BOUNDARY_MARGIN = 0.2
CONTROL_OFF = 1.02  # the exact checks' near miss: phi_1 and sigma_xi 2% off
CONTROL_RATIO = 1.2  # the variance checks' near miss
K = 4
PHI = (1.0, 0.8, 0.6, 0.7)


def configs() -> dict[str, DataConfig]:
    """The sampled settings: balanced good-event basis noise (tight d), i.i.d. labels and
    noise (d = 12, so boundaries are hit often), Gaussian noise, and A' with a noise subspace."""
    common: dict[str, Any] = dict(K=K, phi=PHI, mu=0.5, sigma_xi=0.9, n_test=4)
    n_ge, m_ge = 32, 2
    return {
        "good-event": DataConfig(
            n=n_ge, m=m_ge, d=K + n_ge * m_ge + 3, sampling="balanced",
            noise_placement="good_event", **common,
        ),
        "iid": DataConfig(n=96, m=2, d=12, sampling="iid", noise_placement="iid", **common),
        "gaussian": DataConfig(n=16, m=2, d=50, noise="gaussian", **common),
        "imperfect": DataConfig(
            n=32, m=4, d=400, augmentation="imperfect", aug_sigma_class=0.3,
            aug_sigma_sub=0.2, aug_noise_rank=2, aug_noise_scale=0.5, **common,
        ),
    }  # fmt: skip


def expected_features(labels, data: DataConfig) -> np.ndarray:
    """u~ on coordinates 0..K from the labels (y, y_sub, k, rho; shape (...)) and the config,
    written out from section 3.1 (not via simdyn.data). Returns (..., K + 1)."""
    y, y_sub, k, rho = (np.asarray(a) for a in labels)
    phi = np.asarray(data.phi, float)
    out = np.zeros(y.shape + (data.K + 1,))
    out[..., 0] = 1.0
    out[..., 1] = y * phi[0]
    out[..., 2] = y_sub * phi[1] + data.mu
    for j in range(3, data.K + 1):
        out[..., j] = np.where(k == j, rho * phi[j - 1], 0.0)
    return out


def _labels_ok(labels, data: DataConfig) -> np.ndarray:
    """(S,) every label of the instance in range."""
    y, y_sub, k, rho = (np.asarray(a) for a in labels)
    pm = lambda a: np.all(np.abs(a) == 1, axis=-1)
    return pm(y) & pm(y_sub) & pm(rho) & np.all((k >= 3) & (k <= data.K), axis=-1)


def sample(data: DataConfig, seeds: list[int], key: int):
    """The instances of ``seeds`` (numpy, leading seed axis), through the active simulator."""
    from simdyn.papers.which_features.instances import sample_instances

    return sample_instances(data, seeds, key)


def _minibatch_checks(data: DataConfig, batch, num: int) -> np.ndarray:
    """(num,) per instance: two steps' minibatches each hold batch_size distinct originals with
    their own fixed views, and two steps' fresh augmentations differ."""
    from simdyn.data import Labels, Points, TrainingSet, draw_minibatch

    b = data.n // 2
    out = np.zeros(num, bool)
    for u in range(num):
        ts = TrainingSet(
            Points(*(jnp.asarray(a[u]) for a in batch.points)),
            Labels(*(jnp.asarray(a[u]) for a in batch.labels)),
            Points(*(jnp.asarray(a[u]) for a in batch.originals)),
        )
        rows = np.asarray(ts.points.noise_idx)[:, :, 0]  # (n, m): distinct across originals
        ok = True
        fresh = []
        for step in range(2):
            key = jax.random.fold_in(jax.random.key(u), step)
            pts, _ = draw_minibatch(key, ts, data, b, False, jnp.float64)
            got = np.asarray(pts.noise_idx)[:, :, 0]  # (b, m)
            owners = [np.flatnonzero(np.all(rows == g, axis=1)) for g in got]
            ok &= all(o.size == 1 for o in owners) and len({int(o[0]) for o in owners}) == b
            fpts, _ = draw_minibatch(key, ts, data, b, True, jnp.float64)
            fresh.append(np.asarray(fpts.noise_idx))
        ok &= not np.array_equal(fresh[0], fresh[1])
        out[u] = ok
    return out


def measure(design: Any, key: int) -> dict[str, Any]:
    """Per setting, the per-instance statistics the rules test (numpy arrays), for
    ``design.seeds`` instances per setting (seed indices from SEED_OFFSET)."""
    seeds = list(range(SEED_OFFSET, SEED_OFFSET + int(design.seeds)))
    cfg = configs()
    out: dict[str, Any] = {"instances": len(seeds)}
    batches = {name: sample(data, seeds, key) for name, data in cfg.items()}
    out["batches"] = batches
    out["minibatch_ok"] = _minibatch_checks(
        cfg["good-event"], batches["good-event"], min(len(seeds), 20)
    )
    return out


def _feature_errors(batch, data: DataConfig) -> np.ndarray:
    """(S,) largest |features - u~| / (4 eps (1 + |u~|)) over points and originals (<= 1 ok)."""
    eps = float(np.finfo(np.float64).eps)
    u = expected_features(batch.labels, data)  # (S, n, K+1)
    feats = np.asarray(batch.points.features)  # (S, n, m, K+1)
    if data.augmentation == "imperfect":
        feats = feats.copy()
        feats[..., 1:3] = u[:, :, None, 1:3]  # the jitter is tested by imperfect-jitter
    err_p = np.abs(feats - u[:, :, None, :]) / (4 * eps * (1 + np.abs(u[:, :, None, :])))
    err_o = np.abs(np.asarray(batch.originals.features) - u) / (4 * eps * (1 + np.abs(u)))
    worst = np.maximum(err_p.max(axis=(1, 2, 3)), err_o.max(axis=(1, 2)))
    return np.where(_labels_ok(batch.labels, data), worst, np.inf)


def _features(phi_factor: float = 1.0, name: str = "features"):
    def rule(design, units) -> TestResult:
        bad = []
        for setting, data in configs().items():
            data = dataclasses.replace(data, phi=(data.phi[0] * phi_factor, *data.phi[1:]))
            bad.append(_feature_errors(units["batches"][setting], data) > 1.0)
        fails = np.any(np.stack(bad), axis=0)
        return exact_test(
            name, ~fails, statistic="|feature block - u~(labels, config)| on every point",
            rule="zero instances off u~ by more than 4 eps (every setting)",
        )  # fmt: skip

    return rule


def _basis_noise(sigma_factor: float = 1.0, name: str = "basis-noise"):
    def rule(design, units) -> TestResult:
        ok: np.ndarray | None = None
        for setting in ("good-event", "iid", "imperfect"):
            data = configs()[setting]
            sigma = data.sigma_xi * sigma_factor
            batch = units["batches"][setting]
            for pts in (batch.originals, batch.points):
                idx, val = np.asarray(pts.noise_idx), np.asarray(pts.noise_val)
                idx, val = idx[..., :1], val[..., :1]  # A''s subspace entries: imperfect-jitter
                flat = lambda a: a.reshape(a.shape[0], -1)
                good = np.all(flat(val) == sigma, axis=1)
                good &= np.all((flat(idx) >= 1) & (flat(idx) <= data.d), axis=1)
                ok = good if ok is None else ok & good
            if data.noise_placement == "good_event":
                idx = np.asarray(batch.points.noise_idx).reshape(units["instances"], -1)
                ok &= np.all(idx >= data.K + 1, axis=1)
                ok &= np.array([np.unique(r).size == r.size for r in idx])
        assert ok is not None  # every setting above has points to check
        return exact_test(
            name, ok, statistic="basis noise values and coordinates against the config",
            rule="zero instances with a value != sigma_xi, a coordinate outside [1, d], or "
            "(good event) a repeated coordinate or one in the feature block",
        )  # fmt: skip

    return rule


def _balanced(design, units) -> TestResult:
    data = configs()["good-event"]
    batch = units["batches"]["good-event"]
    y, y_sub, k, rho = (np.asarray(a) for a in batch.labels)
    c = 8 * (data.K - 2)
    lo, hi = data.n // c, -(-data.n // c)
    ok = np.zeros(units["instances"], bool)
    for u in range(ok.size):
        counts = Counter(zip(y[u], y_sub[u], rho[u], k[u], strict=True))
        values = [counts.get(combo, 0) for combo in _combinations(data.K)]
        ok[u] = len(counts) <= c and all(lo <= v <= hi for v in values)
    return exact_test(
        "balanced-labels", ok, statistic="counts of the 8 (K-2) (y, y_sub, rho, k) combinations",
        rule=f"every combination floor(n/c) or ceil(n/c) times on every instance (c = {c})",
    )  # fmt: skip


def _combinations(k_max: int) -> list[tuple[int, int, int, int]]:
    return [
        (y, s, r, k) for y in (1, -1) for s in (1, -1) for r in (1, -1) for k in range(3, k_max + 1)
    ]


def _distinct(design, units) -> TestResult:
    ok = np.ones(units["instances"], bool)
    for setting in ("good-event", "iid"):
        batch = units["batches"][setting]
        idx = np.asarray(batch.points.noise_idx).reshape(units["instances"], -1)
        first: dict[bytes, int] = {}
        for u, row in enumerate(idx):
            h = row.tobytes()
            if h in first:
                ok[u] = ok[first[h]] = False
            first.setdefault(h, u)
    return exact_test(
        "distinct-instances", ok, statistic="training sets shared between seeds",
        rule="no two seeds with the same noise coordinates (every setting)",
    )  # fmt: skip


def _minibatches(design, units) -> TestResult:
    return exact_test(
        "minibatches", units["minibatch_ok"],
        statistic="SGD minibatches of two steps: distinct originals with their own views; "
        "fresh views differ between the steps",
        rule="zero failing instances",
    )  # fmt: skip


def _ratio_test(name: str, values: np.ndarray, margin: float, center: float = 1.0):
    return mean_test(
        name, values, center - margin, center + margin,
        statistic="per-instance ratio to the config's population value",
        rule=f"mean within {center:g} +- {margin:g} (TOST)",
    )  # fmt: skip


def _boundary(design, units, center: float = 1.0, prefix: str = "") -> list[TestResult]:
    data = configs()["iid"]
    batch = units["batches"]["iid"]
    idx = np.concatenate(
        [
            np.asarray(batch.points.noise_idx).reshape(units["instances"], -1),
            np.asarray(batch.originals.noise_idx).reshape(units["instances"], -1),
        ],
        axis=1,
    )
    k = np.asarray(batch.labels.k)
    tests = []
    for j in (1, data.d):
        freq = np.mean(idx == j, axis=1) * data.d
        tests.append(
            _ratio_test(f"{prefix}boundary-coordinate[{j}]", freq, BOUNDARY_MARGIN, center)
        )
    for j in (3, data.K):
        freq = np.mean(k == j, axis=1) * (data.K - 2)
        tests.append(_ratio_test(f"{prefix}iid-labels[k={j}]", freq, BOUNDARY_MARGIN, center))
    return tests


def _variances(design, units, center: float = 1.0, prefix: str = "") -> list[TestResult]:
    cfg = configs()
    g = cfg["gaussian"]
    val = np.asarray(units["batches"]["gaussian"].points.noise_val)
    ratio = np.mean(val.reshape(val.shape[0], -1) ** 2, axis=1) * g.d / g.sigma_xi**2
    tests = [_ratio_test(f"{prefix}gaussian-noise", ratio, GAUSSIAN_MARGIN, center)]
    imp = cfg["imperfect"]
    batch = units["batches"]["imperfect"]
    u = expected_features(batch.labels, imp)[:, :, None, :]
    feats = np.asarray(batch.points.features)
    s = feats.shape[0]
    for j, sd, what in ((1, imp.aug_sigma_class, "class"), (2, imp.aug_sigma_sub, "sub")):
        jit = (feats[..., j] - u[..., j]).reshape(s, -1)
        ratio = np.mean(jit**2, axis=1) / sd**2
        tests.append(
            _ratio_test(f"{prefix}imperfect-jitter[{what}]", ratio, VARIANCE_MARGIN, center)
        )
    sub = np.asarray(batch.points.noise_val)[..., 1:].reshape(s, -1)
    ratio = np.mean(sub**2, axis=1) / imp.aug_noise_scale**2
    tests.append(_ratio_test(f"{prefix}imperfect-jitter[subspace]", ratio, VARIANCE_MARGIN, center))
    return tests


def _describe(design, units) -> RowText:
    return RowText(
        summary=f"{units['instances']} instances x 4 settings",
        design="good-event (balanced, d = K + mn + 3), iid (d = 12), Gaussian, A' (rank 2); "
        f"phi={PHI}, mu=0.5, sigma_xi=0.9; minibatches of n/2 originals on "
        f"{units['minibatch_ok'].size} instances",
    )


ROW = Row(
    measure=measure,
    claim="DATA",
    source="simdyn data model (Sec. 3.1 D_orig, Def. 5.3 A', SGD minibatches)",
    control=f"the exact checks with phi_1 and sigma_xi x {CONTROL_OFF:g}, the variance checks "
    f"against {CONTROL_RATIO:g}: must fail",
    rules=(
        Rule("features", "u~ recomputed from labels and config, every point (exact)", _features()),
        Rule("basis-noise", "values sigma_xi, coordinates in range, good event (exact)",
             _basis_noise()),
        Rule("balanced-labels", "combination counts floor/ceil(n/c) (exact)", _balanced),
        Rule("distinct-instances", "no two seeds share a training set (exact)", _distinct),
        Rule("minibatches", "distinct originals per batch; fresh views differ (exact)",
             _minibatches),
        Rule("{boundary}", f"boundary coordinate and label frequencies x d (or K-2) in "
             f"1 +- {BOUNDARY_MARGIN:g} (TOST)", _boundary),
        Rule("{variance}", f"variance ratios in 1 +- {VARIANCE_MARGIN:g} (Gaussian: "
             f"{GAUSSIAN_MARGIN:g}) (TOST)", _variances),
    ),
    controls=(
        Rule("control:features", f"(near miss) features against phi_1 x {CONTROL_OFF:g}",
             _features(CONTROL_OFF, "control:features")),
        Rule("control:basis-noise", f"(near miss) noise against sigma_xi x {CONTROL_OFF:g}",
             _basis_noise(CONTROL_OFF, "control:basis-noise")),
        Rule("control:{variance}", f"(near miss) the variance ratios against {CONTROL_RATIO:g}",
             lambda design, units: _variances(design, units, CONTROL_RATIO, "control:")),
    ),
    describe=_describe,
)  # fmt: skip
