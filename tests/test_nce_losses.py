"""NCE losses (simdyn._src.nce_losses) against literal loops over anchors, positives, negatives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simdyn._src.nce_losses import info_nce, joint_nce, supcon


def _reference(z, same, temperature, cosine):
    """-1/|P(a)| sum_{q in P(a)} log(exp(s_aq) / sum_{b != a} exp(s_ab)), averaged over anchors.

    z: (n, m, p) numpy; same(i, j, k, l) -> bool says whether view (k, l) is a positive of the
    anchor (i, j) (the anchor itself is excluded here, explicitly).
    """
    n, m, _ = z.shape
    views = [(i, j) for i in range(n) for j in range(m)]

    def sim(a, b):
        u, v = z[a], z[b]
        if cosine:
            u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
        return float(u @ v) / temperature

    total, anchors = 0.0, 0
    for a in views:
        negatives = [b for b in views if b != a]
        denom = sum(math.exp(sim(a, b)) for b in negatives)
        positives = [b for b in negatives if same(*a, *b)]
        if not positives:
            continue
        total += -sum(math.log(math.exp(sim(a, q)) / denom) for q in positives) / len(positives)
        anchors += 1
    return total / anchors


def _batch(seed, n, m, p):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, m, p))
    y = rng.choice([-1, 1], size=n)
    y[0], y[1] = 1, -1  # both classes present
    return z, y


@pytest.mark.slow
@pytest.mark.parametrize("m", [pytest.param(2, marks=pytest.mark.slow), 3])
@pytest.mark.parametrize("cosine", [True, False])
def test_info_nce_matches_loops(m, cosine):
    z, _ = _batch(0, 5, m, 4)
    ref = _reference(z, lambda i, j, k, l: i == k, 0.7, cosine)
    got = float(info_nce(jnp.asarray(z), 0.7, cosine))
    assert got == pytest.approx(ref, rel=1e-12)


def test_info_nce_with_two_views_is_nt_xent():
    """m = 2: SimCLR's NT-Xent, l(i, j) = -log exp(s_ij) / sum_{k != i} exp(s_ik), mean over 2n."""
    z, _ = _batch(1, 4, 2, 3)
    flat = z.reshape(8, 3)
    flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    s = flat @ flat.T / 0.5
    partner = [1, 0, 3, 2, 5, 4, 7, 6]
    terms = [-(s[i, partner[i]] - np.log(np.sum(np.exp(np.delete(s[i], i))))) for i in range(8)]
    assert float(info_nce(jnp.asarray(z), 0.5)) == pytest.approx(np.mean(terms), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("m", [pytest.param(2, marks=pytest.mark.slow), 3])
@pytest.mark.parametrize("cosine", [True, False])
def test_supcon_matches_loops(m, cosine):
    z, y = _batch(2, 6, m, 4)
    ref = _reference(z, lambda i, j, k, l: y[i] == y[k], 0.3, cosine)
    got = float(supcon(jnp.asarray(z), jnp.asarray(y), 0.3, cosine))
    assert got == pytest.approx(ref, rel=1e-12)
    # Negative control: the same reference with InfoNCE's positives is a different number, so
    # this test would catch SupCon silently using the wrong positive set.
    wrong = _reference(z, lambda i, j, k, l: i == k, 0.3, cosine)
    assert abs(got - wrong) > 1e-3


def test_joint_is_the_beta_mixture():
    z, y = _batch(3, 5, 3, 4)
    zj, yj = jnp.asarray(z), jnp.asarray(y)
    for beta in (0.0, 0.3, 1.0):
        want = beta * float(supcon(zj, yj, 0.5)) + (1 - beta) * float(info_nce(zj, 0.5))
        assert float(joint_nce(zj, yj, beta, 0.5)) == pytest.approx(want, rel=1e-12)


@pytest.mark.slow
def test_gradients_finite_and_vmappable():
    z, y = _batch(4, 4, 2, 3)
    zs = jnp.stack([jnp.asarray(z), 2 * jnp.asarray(z), -jnp.asarray(z)])
    f = lambda zz: joint_nce(zz, jnp.asarray(y), 0.5, 0.2, cosine=False)
    batched = jax.jit(jax.vmap(f))(zs)
    for i in range(3):
        assert float(batched[i]) == pytest.approx(float(f(zs[i])), rel=1e-12)
    grads = jax.jit(jax.vmap(jax.grad(f)))(zs)
    assert bool(jnp.all(jnp.isfinite(grads)))
    # An all-zero embedding (dead ReLUs) keeps cosine gradients finite.
    g0 = jax.grad(lambda zz: info_nce(zz, 0.5))(jnp.zeros((3, 2, 4)))
    assert bool(jnp.all(jnp.isfinite(g0)))


def test_single_view_is_rejected():
    with pytest.raises(ValueError, match="m >= 2"):
        info_nce(jnp.ones((3, 1, 2)))
