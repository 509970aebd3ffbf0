"""Encoders beyond the paper's linear map, as ``flax.linen`` modules acting on sparse points.

Why linen (not nnx): a linen module is a stateless description and its parameters a plain
pytree, so ``init``/``apply`` are pure functions of explicit keys and vmap over seeds exactly like
the rest of simdyn (``jit(vmap(scan(step)))``), with no mutable objects to split or merge.

Every encoder starts with :class:`SparseLinear`, the paper's map on the bias-folded input
x~ = [1; x] (D = d + 1): a matrix ``theta`` (width, D) whose column 0 is the bias and columns
1..K the features, applied to :class:`simdyn.data.Points` by gathering only the non-zero
columns (:func:`simdyn.data.embed`), so d = 2000 costs O(width (K + 1 + s)) per point. Its init
is the paper's: every entry (bias included) ~ N(0, sigma_0^2 / d). The first layer's alignment
with feature j is the norm of its column j, as for the linear model.

    linear:      z = Theta x~                                 widths = (p,)
    MLP:         z = W_L relu(... relu(Theta x~) ...) + b_L    widths = (h_1, ..., h_{L-1}, p)
    head:        projection = g(z), g = Dense -> relu -> Dense ...   (SimCLR's projection head)
    normalise:   projection / ||projection||

The encoder returns both the representation z (probed) and the projection (fed to the loss);
without a head and normalisation they are the same array. Normalisation is z / sqrt(|z|^2 + eps):
a point whose ReLUs are all dead embeds to exactly 0, where the gradient is 1/sqrt(eps) (as with
torch's F.normalize); such a seed blows up and is flagged ``diverged`` by the training loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from simdyn.config import Config, ConfigError
from simdyn.data import Points, embed
from simdyn.initialization import init_theta

Array = jax.Array

FIRST_LAYER = "first"  # name of the sparse first layer in the parameter tree


class EncoderOutput(NamedTuple):
    """representation: (..., widths[-1]) the backbone output (probed);
    projection: (..., head[-1] or widths[-1]) what the loss sees (after head / normalisation)."""

    representation: Array
    projection: Array


def first_layer_initializer(d: int, sigma_0: float, use_bias: bool):
    """flax initializer with the paper's law: entries ~ N(0, sigma_0^2 / d), bias column 0 when
    the bias is off (same function as simdyn.init_theta)."""

    def init(key: Array, shape: tuple[int, int], dtype=jnp.float32) -> Array:
        return init_theta(key, shape[0], d, sigma_0, use_bias, dtype)

    return init


class SparseLinear(nn.Module):
    """x~ -> Theta x~ on sparse Points; ``theta`` is (features, d + 1), column 0 the bias."""

    features: int
    d: int
    sigma_0: float
    use_bias: bool = True
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, points: Points) -> Array:
        theta = self.param(
            "theta",
            first_layer_initializer(self.d, self.sigma_0, self.use_bias),
            (self.features, self.d + 1),
            self.param_dtype,
        )
        if not self.use_bias:
            # Column 0 multiplies the constant input: masking it gives it a zero gradient, so the
            # bias stays at its (zero) init, as in simdyn._src.train.
            theta = theta.at[:, 0].set(0.0)
        return embed(theta, points)


class SparseEncoder(nn.Module):
    """Linear map or ReLU MLP on sparse points, with optional projection head and L2 output.

    Attributes:
      d: input dimension (Points coordinates are in [0, d]).
      widths: output widths of the backbone layers; ``(p,)`` is the paper's linear encoder,
        ``(h, p)`` a two-layer ReLU MLP, ``(h1, h2, ..., p)`` a deeper one.
      sigma_0: first-layer init scale (entries ~ N(0, sigma_0^2 / d)).
      use_bias: learn the first layer's bias column (x~ coordinate 0).
      head: widths of a projection head applied after the representation (Dense layers with
        ReLU between them); ``()`` for none.
      normalize: L2-normalise the projection.
      hidden_init_scale: variance-scaling factor of the Dense layers' fan-in normal init
        (2.0 = He init for ReLU); their biases start at 0.
      param_dtype: float32 or float64.
    """

    d: int
    widths: tuple[int, ...]
    sigma_0: float
    use_bias: bool = True
    head: tuple[int, ...] = ()
    normalize: bool = False
    hidden_init_scale: float = 2.0
    param_dtype: Any = jnp.float32

    def _dense(self, width: int, name: str) -> nn.Dense:
        return nn.Dense(
            width,
            kernel_init=nn.initializers.variance_scaling(
                self.hidden_init_scale, "fan_in", "normal"
            ),
            bias_init=nn.initializers.zeros,
            dtype=self.param_dtype,
            param_dtype=self.param_dtype,
            name=name,
        )

    @nn.compact
    def __call__(self, points: Points) -> EncoderOutput:
        h = SparseLinear(
            self.widths[0], self.d, self.sigma_0, self.use_bias, self.param_dtype, name=FIRST_LAYER
        )(points)
        for i, width in enumerate(self.widths[1:], start=1):
            h = self._dense(width, f"layer_{i}")(nn.relu(h))
        z = h
        for i, width in enumerate(self.head):
            z = self._dense(width, f"head_{i}")(z if i == 0 else nn.relu(z))
        if self.normalize:
            # eps inside the root keeps the gradient finite at z = 0.
            z = z * jax.lax.rsqrt(jnp.sum(z**2, axis=-1, keepdims=True) + 1e-12)
        return EncoderOutput(h, z)


def _check_widths(name: str, widths: tuple[int, ...]) -> None:
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ConfigError(f"invalid {name}={widths!r}: must be positive integers")


def make_encoder(
    config: Config,
    hidden: tuple[int, ...] = (),
    *,
    head: tuple[int, ...] = (),
    normalize: bool = False,
    hidden_init_scale: float = 2.0,
) -> SparseEncoder:
    """An encoder for ``config``: output width ``model.p``, init scale ``model.sigma_0``,
    bias ``model.bias``, dtype ``train.dtype``; ``hidden=()`` is the paper's linear map.

    Args:
      config: supplies ``data.d``, ``model.p``, ``model.sigma_0``, ``model.bias`` and
        ``train.dtype``.
      hidden: widths of the hidden ReLU layers before the output layer of width ``model.p``;
        ``()`` for the linear encoder, ``(h,)`` for a two-layer MLP.
      head: widths of a projection head after the representation; ``()`` for none.
      normalize: L2-normalise the projection (what the loss sees).
      hidden_init_scale: variance-scaling factor of the Dense layers' init (2.0 = He).

    Returns:
      The encoder, a flax ``SparseEncoder`` module whose ``apply(params, points)`` maps
      points with leading shape (...) to an :class:`EncoderOutput`: representation (..., p),
      projection (..., head[-1] or p). Its parameters come from :func:`init_encoder`.

    Raises:
      ConfigError: a width that is not a positive integer, or ``hidden_init_scale <= 0``.

    Examples:
      >>> import jax, jax.numpy as jnp, simdyn
      >>> from simdyn.data import Points
      >>> from simdyn.encoders import init_encoder
      >>> config = simdyn.preset("fig2a").replace(d=16)  # p = 3, K = 4
      >>> simdyn.make_encoder(config).widths  # the paper's linear map
      (3,)
      >>> mlp = simdyn.make_encoder(config, hidden=(8,), head=(4,), normalize=True)
      >>> points = Points(jnp.ones((2, 5)), jnp.ones((2, 1), jnp.int32), jnp.zeros((2, 1)))
      >>> out = jax.eval_shape(lambda k: mlp.apply(init_encoder(mlp, k, points), points),
      ...                      jax.random.key(0))
      >>> out.representation.shape, out.projection.shape  # (..., p), (..., head[-1])
      ((2, 3), (2, 4))
    """
    hidden, head = tuple(hidden), tuple(head)
    _check_widths("hidden", hidden)
    _check_widths("head", head)
    if not hidden_init_scale > 0:
        raise ConfigError(f"invalid hidden_init_scale={hidden_init_scale!r}: must be > 0")
    return SparseEncoder(
        d=config.data.d,
        widths=hidden + (config.model.p,),
        sigma_0=float(config.model.sigma_0),
        use_bias=config.model.bias,
        head=head,
        normalize=normalize,
        hidden_init_scale=float(hidden_init_scale),
        param_dtype=jnp.dtype(config.train.dtype),
    )


def init_encoder(encoder: SparseEncoder, key: Array, points: Points) -> dict:
    """Parameters for ``encoder``; ``points`` (any leading shape) only fixes shapes.

    The first layer is drawn from ``key`` itself exactly as simdyn.init_theta draws Theta
    (so a linear encoder starts at the fast path's Theta_0, bit for bit); the Dense layers use
    ``fold_in(key, 1)`` through flax's own key derivation.
    """
    variables = encoder.init({"params": jax.random.fold_in(key, 1)}, points)
    params = dict(variables["params"])
    theta0 = init_theta(
        key, encoder.widths[0], encoder.d, encoder.sigma_0, encoder.use_bias, encoder.param_dtype
    )
    params[FIRST_LAYER] = {"theta": theta0}
    return {"params": params}


def first_layer(params: dict) -> Array:
    """The first layer's Theta (widths[0], d + 1) from a parameter tree."""
    return params["params"][FIRST_LAYER]["theta"]
