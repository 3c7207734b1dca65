"""Convolution as pure functions of arrays: NHWC inputs, HWIO kernels.

    y[n, i, j, o] = Σ_{a, b, c} x_pad[n, S·i + D·a, S·j + D·b, g(o)·C_g + c] · w[a, b, c, o]

with stride S, dilation D, groups G (input channel block g(o) = o // (O/G), C_g = C/G).
Output size per spatial axis: ⌊(W − K_eff + 2P)/S⌋ + 1 with K_eff = D(K − 1) + 1.

Two implementations give the same numbers:

- ``impl='im2col'``: pad, gather the K_h·K_w strided shifted views of the input
  ("patches"), one matmul with the kernel reshaped to (K_h·K_w·C_g, O). Depthwise
  (C_g = 1, G > 1) is a shift-and-add with no patch matrix. A 1-channel input (C = 1, G = 1)
  is a shift-and-add forward whose derivatives are the patch matmul's (``jax.custom_jvp``):
  the matmul's contraction of 9 ran poorly forward, and the shift-and-add's own gradient
  (9 reductions) made the digits-CNN step 1.37× slower.
- ``impl='xla'``: ``lax.conv_general_dilated`` (cuDNN on a GPU).

``impl='auto'`` takes im2col on CPU and XLA elsewhere (``jax.default_backend()``).

Measured on this 2-core CPU (``python -m dlnotes.nn.conv``, ``benchmark()``): a
digits-like CNN (batch 32, 8×8×1 → 3×3×16 SAME, ReLU → 3×3×32 SAME, ReLU → mean →
dense 10), 300 SGD steps (forward + backward) as one ``lax.scan`` in one jit, best
of 3; three runs while other jobs shared the cores (load average 4–7):

    run        im2col                  xla                      ratio
    1          0.45 s (1.50 ms/step)   6.6 s (22 ms/step)       15×
    2          0.43 s (1.44 ms/step)   23.1 s (77 ms/step)      53×
    3          0.22 s (0.73 ms/step)   8.6 s (29 ms/step)       39×
    compile    0.6–2.2 s               0.3–1.1 s
    (DESIGN.md measured 17× on a similar CNN)

Absolute times are noisy under that load (XLA's CPU convolution suffers most);
the ordering never changed. On a GPU cuDNN's convolution is the fast path.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from dlnotes.errors import ConfigError

IMPLS = ("auto", "xla", "im2col")
PADDING_MODES = ("zeros", "reflect")


# --------------------------------------------------------------------------- helpers
def _pair(v, name: str, n: int = 2) -> tuple[int, ...]:
    if isinstance(v, numbers.Integral):
        return (int(v),) * n
    v = tuple(int(a) for a in v)
    if len(v) != n:
        raise ConfigError(name, f"expected an int or {n} ints, got {v}")
    return v


def _explicit_padding(padding, in_sizes, kernel_eff, strides) -> tuple[tuple[int, int], ...]:
    """Padding as ((lo, hi), ...) per spatial axis.

    ``padding`` is an int, a tuple of ints (symmetric per axis), a tuple of
    (lo, hi) pairs, 'VALID' (no padding) or 'SAME' (output size ⌈W/S⌉, the extra
    pixel on the high side, as XLA does).
    """
    n = len(in_sizes)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0),) * n
        if mode == "SAME":
            pads = []
            for w, k, s in zip(in_sizes, kernel_eff, strides):
                out = -(-w // s)
                total = max((out - 1) * s + k - w, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ConfigError("padding", f"expected an int, pairs, 'SAME' or 'VALID', got {padding!r}")
    if isinstance(padding, numbers.Integral):
        return ((int(padding), int(padding)),) * n
    padding = tuple(padding)
    if len(padding) != n:
        raise ConfigError("padding", f"expected {n} entries, got {padding}")
    return tuple((int(p), int(p)) if isinstance(p, numbers.Integral) else (int(p[0]), int(p[1]))
                 for p in padding)


def pad_spatial(x: jax.Array, pads, mode: str = "zeros", value=0.0) -> jax.Array:
    """Pad the spatial axes (all but the first and last) of ``x``.

    ``mode``: 'zeros' (constant ``value``) or 'reflect' (mirror without repeating
    the edge: [a b c] → [c b | a b c | b a]); reflect needs pad < size per axis.
    """
    if mode not in PADDING_MODES:
        raise ConfigError("padding_mode", f"expected one of {PADDING_MODES}, got {mode!r}")
    widths = ((0, 0),) + tuple(pads) + ((0, 0),)
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    if mode == "reflect":
        for (lo, hi), size in zip(pads, x.shape[1:-1]):
            if max(lo, hi) >= size:
                raise ConfigError("padding", f"reflect padding {max(lo, hi)} needs input size > pad, got {size}")
        return jnp.pad(x, widths, mode="reflect")
    return jnp.pad(x, widths, mode="constant", constant_values=value)


def shifted_views(x: jax.Array, kernel, strides, dilation, out_sizes) -> list[jax.Array]:
    """The K_h·K_w strided views x[:, D·a :: S, D·b :: S, :] cropped to the output size
    (row-major over kernel positions). ``x`` is already padded. Shared with pooling."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, strides, dilation, out_sizes
    views = []
    for a in range(kh):
        for b in range(kw):
            r0, c0 = a * dh, b * dw
            views.append(
                lax.slice(x, (0, r0, c0, 0),
                          (x.shape[0], r0 + (oh - 1) * sh + 1, c0 + (ow - 1) * sw + 1, x.shape[3]),
                          (1, sh, sw, 1)))
    return views


def resolve_impl(impl: str) -> str:
    """'auto' → 'im2col' on CPU, 'xla' elsewhere."""
    if impl not in IMPLS:
        raise ConfigError("impl", f"expected one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return "im2col" if jax.default_backend() == "cpu" else "xla"
    return impl


# --------------------------------------------------------------------------- convolutions
def conv2d(x: jax.Array, w: jax.Array, *, stride=1, padding=0, padding_mode: str = "zeros",
           dilation=1, groups: int = 1, impl: str = "auto") -> jax.Array:
    """2-D convolution (cross-correlation, as in deep learning). No bias.

    x: (N, H, W, C); w: (K_h, K_w, C/groups, O) with O divisible by ``groups``.
    stride, dilation: int or (S_h, S_w); padding: int, (P_h, P_w), ((lo, hi), (lo, hi)),
    'SAME' or 'VALID'; padding_mode: 'zeros' or 'reflect'.
    Returns (N, H_out, W_out, O), H_out = ⌊(H − K_eff + P_lo + P_hi)/S⌋ + 1.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ConfigError("conv2d", f"expected NHWC input and HWIO kernel, got {x.shape}, {w.shape}")
    kh, kw, cg, o = w.shape
    c = x.shape[-1]
    if c % groups or o % groups or c // groups != cg:
        raise ConfigError("groups", f"input channels {c} / groups {groups} must equal kernel's {cg}, "
                                    f"and output channels {o} be divisible by groups")
    strides, dil = _pair(stride, "stride"), _pair(dilation, "dilation")
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip((kh, kw), dil))
    pads = _explicit_padding(padding, x.shape[1:3], k_eff, strides)
    impl = resolve_impl(impl)

    if impl == "xla":
        if padding_mode == "reflect":
            x, pads = pad_spatial(x, pads, "reflect"), ((0, 0), (0, 0))
        elif padding_mode not in PADDING_MODES:
            raise ConfigError("padding_mode", f"expected one of {PADDING_MODES}, got {padding_mode!r}")
        return lax.conv_general_dilated(
            x, w, window_strides=strides, padding=pads, rhs_dilation=dil,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)

    return _conv2d_im2col(x, w, strides, pads, dil, groups, padding_mode)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _conv2d_im2col(x, w, strides, pads, dil, groups, padding_mode):
    """im2col path (jitted so eager calls compile once, not once per slice; inlined under jit)."""
    kh, kw, cg, o = w.shape
    c = x.shape[-1]
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip((kh, kw), dil))
    x = pad_spatial(x, pads, padding_mode)
    out = tuple((x.shape[1 + i] - k_eff[i]) // strides[i] + 1 for i in range(2))
    if min(out) < 1:
        raise ConfigError("conv2d", f"kernel {k_eff} larger than padded input {x.shape[1:3]}")
    if groups == 1:   # the patch matmul; one input channel: shift and add, derivatives through the matmul
        return _one_channel_conv(x, w, strides, dil) if c == 1 else _patch_matmul(x, w, strides, dil)
    views = shifted_views(x, (kh, kw), strides, dil, out)
    n = x.shape[0]
    if cg == 1:  # depthwise (times a channel multiplier m): shift and add, no patch matrix
        m = o // groups
        wk = w.reshape(kh * kw, groups, m)
        y = sum(v[..., None] * wk[k] for k, v in enumerate(views))
        return y.reshape(n, *out, o)
    patches = jnp.stack(views, axis=3)                           # (N, Ho, Wo, K, C)
    og = o // groups
    patches = patches.reshape(n, *out, kh * kw, groups, cg)
    wg = w.reshape(kh * kw, cg, groups, og)
    y = jnp.einsum("nhwkgc,kcgo->nhwgo", patches, wg)
    return y.reshape(n, *out, o)


def _patch_matmul(x, w, strides, dil):
    """VALID conv of an already padded x with groups = 1: the patch matrix times the kernel."""
    kh, kw, c, o = w.shape
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip((kh, kw), dil))
    out = tuple((x.shape[1 + i] - k_eff[i]) // strides[i] + 1 for i in range(2))
    patches = jnp.stack(shifted_views(x, (kh, kw), strides, dil, out), axis=3)     # (N, Ho, Wo, K, C)
    y = patches.reshape(-1, kh * kw * c) @ w.reshape(kh * kw * c, o)
    return y.reshape(x.shape[0], *out, o)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _one_channel_conv(x, w, strides, dil):
    """VALID conv of a padded 1-channel x: y = Σ_k view_k(x) · w[k] (K_h·K_w broadcast multiply-adds,
    one fused loop), where the patch matmul has a contraction of only K_h·K_w (9) and ran poorly.

    Derivatives (forward and reverse mode) are those of the patch matmul, linear in each argument:
    ẏ = conv(ẋ, w) + conv(x, ẇ), so reverse mode gives ∂w = Pᵀ·g as one matmul, not the K_h·K_w
    reductions of the shift-and-add's own gradient (1.37× slower step, measured before). The digits
    CNN's 600 training steps ran 1.18× faster than with the patch matmul forward (12-02, each version in
    its own process, taking turns, 14 rounds). Same values up to float32 summation order."""
    kh, kw, _, o = w.shape
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip((kh, kw), dil))
    out = tuple((x.shape[1 + i] - k_eff[i]) // strides[i] + 1 for i in range(2))
    wk = w.reshape(kh * kw, o)
    views = shifted_views(x, (kh, kw), strides, dil, out)
    y = views[0] * wk[0]
    for k in range(1, kh * kw):
        y = y + views[k] * wk[k]
    return y


@_one_channel_conv.defjvp
def _one_channel_conv_jvp(strides, dil, primals, tangents):
    (x, w), (x_dot, w_dot) = primals, tangents
    y = _one_channel_conv(x, w, strides, dil)
    return y, _patch_matmul(x_dot, w, strides, dil) + _patch_matmul(x, w_dot, strides, dil)


def conv1d(x: jax.Array, w: jax.Array, *, stride=1, padding=0, padding_mode: str = "zeros",
           dilation=1, groups: int = 1, impl: str = "auto") -> jax.Array:
    """1-D convolution. x: (N, W, C); w: (K, C/groups, O); padding: int, (lo, hi),
    'SAME' or 'VALID'. Returns (N, W_out, O). (``conv2d`` with a height-1 axis.)"""
    if isinstance(padding, str):
        pad2 = padding                      # SAME on the height-1 axis pads nothing
    elif isinstance(padding, numbers.Integral):
        pad2 = ((0, 0), (int(padding), int(padding)))
    else:
        pad2 = ((0, 0), tuple(padding))
    y = conv2d(x[:, None], w[None], stride=(1, _pair(stride, "stride", 1)[0]), padding=pad2,
               padding_mode=padding_mode, dilation=(1, _pair(dilation, "dilation", 1)[0]),
               groups=groups, impl=impl)
    return y[:, 0]


def depthwise_conv2d(x: jax.Array, w: jax.Array, **kwargs) -> jax.Array:
    """Depthwise convolution: each channel with its own filter(s), no mixing.

    x: (N, H, W, C); w: (K_h, K_w, 1, C·m) for a channel multiplier m (output channel
    c·m + j sees input channel c). ``conv2d`` with groups = C; same keyword arguments.
    """
    return conv2d(x, w, groups=x.shape[-1], **kwargs)


# --------------------------------------------------------------------------- geometry
def conv_output_size(W: int, K: int, P: int, S: int = 1, D: int = 1) -> int:
    """⌊(W − K_eff + 2P)/S⌋ + 1 with K_eff = D(K − 1) + 1 (symmetric padding P)."""
    return (W - (D * (K - 1) + 1) + 2 * P) // S + 1


class ReceptiveField(NamedTuple):
    size: int   # input pixels one output unit sees along an axis (bounding box)
    jump: int   # input-pixel distance between neighbouring output units (total stride)


def receptive_field(layers: Sequence[Sequence[int]]) -> ReceptiveField:
    """Receptive field of a stack of (kernel, stride[, dilation]) layers along one axis.

    r_0 = 1, j_0 = 1;  r_l = r_{l−1} + (K_eff,l − 1)·j_{l−1},  j_l = j_{l−1}·S_l.
    Pooling layers count as (window, stride). Linear growth with stride-1 convs,
    exponential with stride > 1 (r_l ≥ j_l = Π S).
    """
    r, j = 1, 1
    for layer in layers:
        layer = tuple(layer)
        k = layer[0]
        s = layer[1] if len(layer) > 1 else 1
        d = layer[2] if len(layer) > 2 else 1
        r += d * (k - 1) * j
        j *= s
    return ReceptiveField(r, j)


def num_conv_params(K, C_in: int, C_out: int, depthwise: bool = False, bias: bool = True,
                    groups: int = 1) -> int:
    """Parameters of a conv layer with a K×K (or (K_h, K_w)) kernel.

    Dense: K²·C_in·C_out/groups; depthwise (groups = C_in, C_out = m·C_in): K²·C_out,
    i.e. K²·C for m = 1 versus K²·C² dense (ratio C). Plus C_out biases if ``bias``.
    """
    kh, kw = _pair(K, "K")
    if depthwise:
        groups = C_in
    if C_in % groups or C_out % groups:
        raise ConfigError("groups", f"{groups} must divide C_in={C_in} and C_out={C_out}")
    return kh * kw * (C_in // groups) * C_out + (C_out if bias else 0)


# --------------------------------------------------------------------------- measurement
def benchmark(steps: int = 300, batch: int = 32, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Time a digits-like CNN's SGD steps inside one ``lax.scan`` for each impl.

    Returns {impl: {"compile_s", "run_s", "ms_per_step"}} (best of ``repeats``).
    """
    import time

    key = jax.random.key(0)
    kx, ky, k1, k2, k3 = jax.random.split(key, 5)
    xs = jax.random.normal(kx, (steps, batch, 8, 8, 1))
    ys = jax.random.randint(ky, (steps, batch), 0, 10)
    params0 = {
        "w1": jax.random.normal(k1, (3, 3, 1, 16)) / 3.0,
        "w2": jax.random.normal(k2, (3, 3, 16, 32)) / 12.0,
        "w3": jax.random.normal(k3, (32, 10)) / math.sqrt(32),
    }

    def make(impl):
        def loss(p, x, y):
            h = jax.nn.relu(conv2d(x, p["w1"], padding="SAME", impl=impl))
            h = jax.nn.relu(conv2d(h, p["w2"], padding="SAME", impl=impl))
            logits = h.mean(axis=(1, 2)) @ p["w3"]
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1))

        @jax.jit
        def train(p, xs, ys):
            def step(p, xy):
                l, g = jax.value_and_grad(loss)(p, *xy)
                return jax.tree.map(lambda a, b: a - 0.1 * b, p, g), l
            return lax.scan(step, p, (xs, ys))
        return train

    results = {}
    for impl in ("im2col", "xla"):
        train = make(impl)
        t0 = time.perf_counter()
        compiled = train.lower(params0, xs, ys).compile()
        t_compile = time.perf_counter() - t0
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(params0, xs, ys))
            best = min(best, time.perf_counter() - t0)
        results[impl] = {"compile_s": t_compile, "run_s": best, "ms_per_step": 1e3 * best / steps}
    return results


if __name__ == "__main__":
    for name, r in benchmark().items():
        print(f"{name:7s} run {r['run_s']:.3f} s ({r['ms_per_step']:.2f} ms/step), compile {r['compile_s']:.2f} s")
