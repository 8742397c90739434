"""ONNX Resize: nearest, linear and cubic, every coordinate transformation mode.

Resize is separable, so each resized axis is done on its own: every output
position maps to a source coordinate (per ``coordinate_transformation_mode``),
gathers a few neighbouring input positions (edge-clamped) and sums them with
interpolation weights. Scales, sizes and roi may be runtime tensors; the
number of taps of an antialiased kernel then follows the runtime scale.
Arithmetic is float64, as in ONNX's reference, then cast back.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import tensor_util

from portability.adapters.tf_savedmodel.ops import spatial as geo
from portability.adapters.tf_savedmodel.ops.channels_last import register_last, view_context
from portability.adapters.tf_savedmodel.ops.registry import normalize_axis, rank_of, register, unsupported

_F64 = tf.float64


def _source_coords(mode, y, scale, in_size, out_size, roi):
    """Source coordinate of each output index ``y`` (all float64 tensors)."""
    out_width = scale * in_size  # the unrounded output width ONNX uses
    single = tf.equal(out_width, 1.0)
    if mode == "align_corners":
        return tf.where(single, tf.zeros_like(y), y * (in_size - 1) / (out_width - 1))
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        spread = tf.where(single, (end - start) * (in_size - 1) / 2 + 0 * y,
                          y * (end - start) * (in_size - 1) / (out_width - 1))
        return spread + start * (in_size - 1)
    if mode == "pytorch_half_pixel":
        return tf.where(single, tf.fill(tf.shape(y), tf.constant(-0.5, _F64)), (y + 0.5) / scale - 0.5)
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = in_size / 2 * (1 - out_size / out_width)
        return offset + (y + 0.5) / scale - 0.5
    raise ValueError(f"coordinate_transformation_mode {mode!r} is not an ONNX mode")


def _nearest_index(coords, rounding):
    base = tf.floor(coords)
    frac = coords - base
    if rounding == "round_prefer_floor":
        up = frac > 0.5
    elif rounding == "round_prefer_ceil":
        up = frac >= 0.5
    elif rounding == "floor":
        up = tf.zeros_like(frac, tf.bool)
    elif rounding == "ceil":
        up = frac > 0
    else:
        raise ValueError(f"nearest_mode {rounding!r} is not an ONNX mode")
    return tf.cast(base, tf.int64) + tf.cast(up, tf.int64)


def _cubic(t, a):
    t = tf.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return tf.where(t <= 1, near, tf.where(t < 2, far, tf.zeros_like(t)))


def _taps(mode, coords, scale, a, antialias):
    """(first input index [Out], tap offsets [K], weights [Out, K]) of each output."""
    base = tf.floor(coords)
    frac = (coords - base)[:, None]
    shrink = tf.minimum(scale, 1.0) if antialias else tf.constant(1.0, _F64)
    reach = 1.0 if mode == "linear" else 2.0
    start = tf.floor(-reach / shrink) + 1
    offsets = tf.range(start, 2 - start, dtype=_F64)
    distance = (offsets[None, :] - frac) * shrink
    if mode == "linear":
        weights = tf.maximum(1 - tf.abs(distance), 0.0)
    else:
        weights = _cubic(distance, a)
    if antialias:
        weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    return tf.cast(base, tf.int64), tf.cast(offsets, tf.int64), weights


def _resize_axis(x, axis, scale, out_size, roi, attrs):
    """Resize float64 (or, for nearest, any-dtype) ``x`` along one axis."""
    rank = x.shape.rank
    in_size_int = tf.shape(x, out_type=tf.int64)[axis]
    in_size = tf.cast(in_size_int, _F64)
    y = tf.range(out_size, dtype=tf.int64)
    coords = _source_coords(attrs["ctm"], tf.cast(y, _F64), scale, in_size, tf.cast(out_size, _F64), roi)
    last = tf.maximum(in_size_int - 1, 0)
    if attrs["mode"] == "nearest":
        index = tf.clip_by_value(_nearest_index(coords, attrs["nearest"]), 0, last)
        out = tf.gather(x, index, axis=axis)
    else:
        base, offsets, weights = _taps(attrs["mode"], coords, scale, attrs["a"], attrs["antialias"])
        index = base[:, None] + offsets[None, :]
        if attrs["exclude_outside"]:
            weights = tf.where((index < 0) | (index > last), tf.zeros_like(weights), weights)
            total = tf.reduce_sum(weights, axis=1, keepdims=True)
            weights = weights / tf.where(total == 0, tf.ones_like(total), total)
        gathered = tf.gather(x, tf.clip_by_value(index, 0, last), axis=axis)
        shape = tf.concat([tf.ones([axis], tf.int64), tf.shape(weights, out_type=tf.int64),
                           tf.ones([rank - axis - 1], tf.int64)], 0)
        out = tf.reduce_sum(gathered * tf.reshape(weights, shape), axis=axis + 1)
    if attrs["ctm"] == "tf_crop_and_resize":
        outside = (coords < 0) | (coords > in_size - 1)
        mask_shape = [1] * axis + [-1] + [1] * (rank - axis - 1)
        fill = tf.cast(attrs["extrapolation"], out.dtype)
        out = tf.where(tf.reshape(outside, mask_shape), fill, out)
    return out


def _attrs(ctx):
    if ctx.opset < 11:  # Resize-10: asymmetric coordinates, nearest rounds down
        return {"mode": ctx.attr("mode", "nearest"), "ctm": "asymmetric", "nearest": "floor",
                "a": -0.75, "antialias": 0, "exclude_outside": 0, "extrapolation": 0.0}
    return {"mode": ctx.attr("mode", "nearest"),
            "ctm": ctx.attr("coordinate_transformation_mode", "half_pixel"),
            "nearest": ctx.attr("nearest_mode", "round_prefer_floor"),
            "a": ctx.attr("cubic_coeff_a", -0.75), "antialias": ctx.attr("antialias", 0),
            "exclude_outside": ctx.attr("exclude_outside", 0),
            "extrapolation": ctx.attr("extrapolation_value", 0.0)}


def _present(ctx, i):
    """Whether optional input ``i`` is given and not an empty tensor."""
    if not ctx.has_input(i):
        return False
    length = ctx.input(i).shape.num_elements()
    return length is None or length > 0


def _scales_and_sizes(node, ctx, x, axes):
    """Per resized axis: float64 scales and int64 output sizes (tensors)."""
    dims = tf.cast(tf.gather(tf.shape(x, out_type=tf.int64), axes), _F64)
    scales_index, sizes_index = (1, None) if ctx.opset < 11 else (2, 3)
    if sizes_index is not None and _present(ctx, sizes_index):
        sizes = tf.cast(tf.reshape(ctx.input(sizes_index), [-1]), _F64)
        scales = sizes / dims
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = tf.reduce_min if policy == "not_larger" else tf.reduce_max
            scales = tf.fill(tf.shape(scales), pick(scales))
            sizes = tf.floor(scales * dims + 0.5)
        return scales, tf.cast(sizes, tf.int64)
    if not _present(ctx, scales_index):
        raise unsupported(node, "neither scales nor sizes is given")
    scales = tf.cast(tf.reshape(ctx.input(scales_index), [-1]), _F64)
    if ctx.opset < 18 or ctx.attr("axes") is None:
        scales = tf.gather(scales, axes)
    return scales, tf.cast(tf.floor(scales * dims), tf.int64)


@register("Resize", "Upsample")
def resize(node, ctx):
    x = ctx.input(0)
    rank = rank_of(node, x)
    attrs = _attrs(ctx)
    if attrs["mode"] not in ("nearest", "linear", "cubic"):
        raise unsupported(node, f"mode {attrs['mode']!r}")
    if attrs["mode"] == "nearest" and attrs["antialias"]:
        raise unsupported(node, "antialias with nearest mode")
    listed = ctx.attr("axes") if ctx.opset >= 18 else None
    axes = [normalize_axis(a, rank) for a in listed] if listed is not None else list(range(rank))
    scales, sizes = _scales_and_sizes(node, ctx, x, axes)
    roi = None
    if attrs["ctm"] == "tf_crop_and_resize":
        if not _present(ctx, 1):
            raise unsupported(node, "tf_crop_and_resize without roi")
        roi = tf.reshape(tf.cast(ctx.input(1), _F64), [2, -1])
    static_scales = tf.get_static_value(scales)
    interpolating = attrs["mode"] != "nearest"
    out = tf.cast(x, _F64) if interpolating else x
    for i, axis in enumerate(axes):
        if roi is None and static_scales is not None and np.isclose(static_scales[i], 1.0):
            continue
        pair = None if roi is None else (roi[0, i], roi[1, i])
        out = _resize_axis(out, axis, scales[i], sizes[i], pair, attrs)
    if interpolating and x.dtype.is_integer:
        out = tf.round(tf.clip_by_value(out, x.dtype.min, x.dtype.max))
    return tf.cast(out, x.dtype)


def _resize_last_accepts(node, ctx, x) -> bool:
    rank = x.shape.rank
    return node.op_type == "Resize" and ctx.opset >= 11 and rank is not None and 3 <= rank <= 5


@register_last("Resize", accepts=_resize_last_accepts)
def resize_last(node, ctx):
    """Channels-last Resize: TF's ResizeBilinear where it computes what ONNX asks,
    else the separable resize on the channels-last axes.

    Output sizes whose spatial entries are constants but whose batch and channel
    entries are read from a shape at run time (what an exporter writes for
    ``interpolate(x, size=...)`` with a dynamic batch) take ResizeBilinear when those
    entries equal the input's at run time, the separable resize otherwise.
    """
    xl = ctx.input(0)
    fast = _bilinear_last(node, ctx, xl)
    if fast is not None:
        resized, unchanged, size = fast
        if unchanged is None:
            return resized()
        out = tf.cond(unchanged, resized, lambda: _separable_last(node, ctx, xl))
        out.set_shape([None, *tf.get_static_value(size), None])  # static sizes: both branches agree
        return out
    fast = _nearest_repeat_last(ctx, xl)
    return fast if fast is not None else _separable_last(node, ctx, xl)


def _separable_last(node, ctx, xl):
    """The separable resize of channels-last ``xl``, its vectors remapped to that layout."""
    rank = xl.shape.rank
    perm = geo.to_last_perm(rank)
    listed = ctx.attr("axes")
    if listed is not None:  # the vectors follow the listed axes: remap the axes
        axes = [perm.index(normalize_axis(a, rank)) for a in listed]
        return resize(node, view_context(ctx, node, {node.input[0]: xl}).with_attrs(axes=axes))
    overrides: dict = {node.input[0]: xl}
    static: dict = {}
    for i in (1, 2, 3):
        if not _present(ctx, i):
            continue
        order = perm + [p + rank for p in perm] if i == 1 else perm
        value = ctx.static_value(i)
        if value is not None:
            static[node.input[i]] = np.asarray(value).reshape(-1)[order]
            overrides[node.input[i]] = tf.constant(static[node.input[i]])
        else:
            overrides[node.input[i]] = tf.gather(tf.reshape(ctx.input(i), [-1]), order)
    return resize(node, view_context(ctx, node, overrides, static))


# (coordinate_transformation_mode, nearest_mode) pairs that map output index y to
# input index floor(y / s) for every integer scale s: asymmetric y / s rounded down;
# half_pixel's (y + 0.5) / s - 0.5 lies strictly within 0.5 of floor(y / s), so both
# round-half modes land on it.
_REPEATING = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
              ("half_pixel", "round_prefer_ceil"), ("pytorch_half_pixel", "round_prefer_floor"),
              ("pytorch_half_pixel", "round_prefer_ceil")}


def _nearest_repeat_last(ctx, xl):
    """Nearest upsampling of a 4-D channels-last tensor by static integer factors on its
    spatial axes, as each pixel repeated (one broadcast, no index arithmetic); else None."""
    attrs = _attrs(ctx)
    if (xl.shape.rank != 4 or attrs["mode"] != "nearest" or (attrs["ctm"], attrs["nearest"]) not in _REPEATING
            or ctx.attr("axes") is not None or _present(ctx, 3) or not _present(ctx, 2)):
        return None
    scales = ctx.static_value(2)
    if scales is None or np.size(scales) != 4:
        return None
    scales = np.asarray(scales, np.float64).reshape(-1)  # ONNX order: N, C, H, W
    if scales[0] != 1 or scales[1] != 1 or not all(f == int(f) and f >= 1 for f in scales[2:]):
        return None
    sh, sw = int(scales[2]), int(scales[3])
    shape = tf.shape(xl)
    spread = tf.broadcast_to(tf.reshape(xl, tf.stack([shape[0], shape[1], 1, shape[2], 1, shape[3]])),
                             tf.stack([shape[0], shape[1], sh, shape[2], sw, shape[3]]))
    out = tf.reshape(spread, tf.stack([shape[0], shape[1] * sh, shape[2] * sw, shape[3]]))
    n, h, w, c = xl.shape.as_list()
    out.set_shape([n, None if h is None else h * sh, None if w is None else w * sw, c])
    return out


_BILINEAR_MODES = {"half_pixel": (False, True), "pytorch_half_pixel": (False, True),
                   "align_corners": (True, False), "asymmetric": (False, False)}


def _bilinear_last(node, ctx, xl):
    """ResizeBilinear of a 4-D float32 channels-last tensor whose spatial axes only are
    resized, with output sizes TF's own scale (in / out) reproduces exactly, as (a
    function building it, None or the boolean tensor under which it is right, the
    int32 output size); else None."""
    attrs = _attrs(ctx)
    if (xl.shape.rank != 4 or xl.dtype != tf.float32 or attrs["mode"] != "linear" or attrs["antialias"]
            or attrs["ctm"] not in _BILINEAR_MODES or ctx.attr("keep_aspect_ratio_policy", "stretch") != "stretch"):
        return None
    listed = ctx.attr("axes")
    axes = [normalize_axis(a, 4) for a in listed] if listed is not None else [0, 1, 2, 3]
    spatial = [axes.index(2), axes.index(3)] if set(axes) >= {2, 3} and set(axes) <= {0, 1, 2, 3} else None
    if spatial is None:
        return None
    untouched = {k: axes.index(a) for k, a in ((0, 0), (3, 1)) if a in axes}  # channels-last axis: entry
    size = _bilinear_size(ctx, xl, spatial, untouched)
    if size is None:
        return None
    size, unchanged = size
    align, half = _BILINEAR_MODES[attrs["ctm"]]

    def resized():
        return tf.raw_ops.ResizeBilinear(images=xl, size=size, align_corners=align, half_pixel_centers=half)
    return resized, unchanged, size


def _bilinear_size(ctx, xl, spatial, untouched):
    """(int32 output (height, width), None or a boolean tensor that must hold at run
    time: the batch and channel sizes asked for equal the input's), or None where
    TF's scale would differ from ONNX's."""
    if _present(ctx, 3):
        sizes = _partly_known(ctx, 3)
        if sizes is None or any(sizes[i] is None for i in spatial):
            return None
        checks = []
        for axis, i in untouched.items():
            if sizes[i] is not None and xl.shape[axis] is not None:
                if sizes[i] != xl.shape[axis]:
                    return None
                continue
            wanted = tf.cast(tf.reshape(ctx.input(3), [-1])[i], tf.int64)
            checks.append(tf.equal(wanted, tf.shape(xl, out_type=tf.int64)[axis]))
        out = [int(sizes[i]) for i in spatial]
        if ctx.attr("coordinate_transformation_mode", "half_pixel") == "pytorch_half_pixel" and min(out) < 2:
            return None
        return tf.constant(out, tf.int32), (tf.reduce_all(tf.stack(checks)) if checks else None)
    scales = ctx.static_value(2) if _present(ctx, 2) else None
    if scales is None:
        return None
    scales = np.asarray(scales, np.float64).reshape(-1)
    if any(scales[i] != 1 for i in untouched.values()):
        return None
    wanted = [scales[i] for i in spatial]
    dims = [xl.shape[1], xl.shape[2]]
    exact = all(s == int(s) and s >= 2 for s in wanted) or all(
        d is not None and float(d * s).is_integer() and d * s >= 2 for d, s in zip(dims, wanted, strict=True))
    if not exact:
        return None
    shape = tf.shape(xl)[1:3]
    return tf.cast(tf.floor(tf.cast(shape, tf.float64) * tf.constant(wanted, tf.float64)), tf.int32), None


def _partly_known(ctx, i):
    """Input ``i``'s entries as ints where known while translating, None where only the
    running graph knows them (a size read from a tensor's dynamic shape); None when not
    even its length is known."""
    value = ctx.static_value(i)
    if value is not None:
        return [int(v) for v in np.asarray(value).reshape(-1)]
    try:  # follows Shape, StridedSlice, Pack and ConcatV2 back to what is constant
        known = tensor_util.constant_value_as_shape(ctx.input(i))
    except (ValueError, TypeError):
        return None
    return None if known.rank is None else known.as_list()
