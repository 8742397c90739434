"""Expected values computed from the ONNX operator definitions, for the cases where onnx's
reference evaluator departs from the spec. Each oracle is a direct numpy reading of the
op's text in the ONNX operator docs (``onnx.defs.get_schema(op).doc``), cited in its
docstring, in float64 and cast to the output dtype at the end.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv_transpose_2d(x, w, b=None, *, strides=(1, 1), dilations=(1, 1), pads=(0, 0, 0, 0), group=1,
                      output_padding=(0, 0)):
    """ConvTranspose-11, 2-D, explicit pads: W is ``(C, M/group, kH, kW)``; input channel
    ``c`` of group ``g`` scatters ``x[c, i, j] * W[c, m, kh, kw]`` to output channel
    ``g*M/group + m`` at ``(i*stride + kh*dilation - pad_begin)``; the output size is
    ``stride*(in-1) + output_padding + ((k-1)*dilation + 1) - pad_begin - pad_end``."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    cg, mg, kh, kw = c // group, w.shape[1], w.shape[2], w.shape[3]
    full = np.zeros((n, mg * group,
                     strides[0] * (h - 1) + (kh - 1) * dilations[0] + 1 + output_padding[0],
                     strides[1] * (wd - 1) + (kw - 1) * dilations[1] + 1 + output_padding[1]))
    for g in range(group):
        xs, ws = x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilations[0], j * dilations[1]
                full[:, g * mg:(g + 1) * mg, r0:r0 + strides[0] * (h - 1) + 1:strides[0],
                     c0:c0 + strides[1] * (wd - 1) + 1:strides[1]] += np.einsum("ncij,cm->nmij", xs, ws[:, :, i, j])
    out = full[:, :, pads[0]:full.shape[2] - pads[2], pads[1]:full.shape[3] - pads[3]]
    if b is not None:
        out = out + np.asarray(b, np.float64)[None, :, None, None]
    return out.astype(np.float32)


def pool_auto_pad(x, op, *, kernel_shape, strides, auto_pad):
    """MaxPool-12 / AveragePool-19 with ``auto_pad`` SAME_UPPER or SAME_LOWER:
    ``output = ceil(input / stride)``, ``pad = (output - 1) * stride + kernel - input``,
    the odd one at the end for SAME_UPPER and at the beginning for SAME_LOWER. Padded
    positions never win a max, and with ``count_include_pad=0`` (the default) they are
    not counted in an average."""
    x = np.asarray(x, np.float64)
    spatial = x.shape[2:]
    widths = [(0, 0), (0, 0)]
    for size, k, s in zip(spatial, kernel_shape, strides, strict=True):
        total = max(0, (math.ceil(size / s) - 1) * s + k - size)
        small, large = total // 2, total - total // 2
        widths.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    padded = np.pad(x, widths, constant_values=np.nan)
    windows = sliding_window_view(padded, kernel_shape, axis=tuple(range(2, x.ndim)))
    windows = windows[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
    axes = tuple(range(x.ndim, windows.ndim))
    out = np.nanmax(windows, axis=axes) if op == "MaxPool" else np.nanmean(windows, axis=axes)
    return out.astype(np.float32)


def pad(x, pads, mode="constant", value=0.0):
    """Pad-21: ``pads`` = ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]``, "the number of
    padding elements to add or remove (if negative) at the beginning and end of each axis";
    ``reflect`` mirrors on the first and last values, ``edge`` repeats them, ``wrap`` pads as
    if the data formed a torus. Removal comes first, so a mode reads the data that remains
    (the spec leaves the order open; onnxruntime does the same)."""
    x = np.asarray(x)
    rank = x.ndim
    begins, ends = list(pads[:rank]), list(pads[rank:])
    kept = tuple(slice(max(0, -b), x.shape[i] - max(0, -e)) for i, (b, e) in enumerate(zip(begins, ends,
                                                                                           strict=True)))
    cropped = x[kept]
    widths = [(max(0, b), max(0, e)) for b, e in zip(begins, ends, strict=True)]
    if mode == "constant":
        return np.pad(cropped, widths, mode="constant", constant_values=value)
    return np.pad(cropped, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


def softmax_before_13(x, axis=1):
    """Softmax-1/11: "the input will be coerced into a 2-dimensional tensor with dimensions
    [a_0 * ... * a_{k-1}, a_k * ... * a_{n-1}]" for ``axis`` k, and the softmax runs over
    the second dimension (all the axes from k on together)."""
    x = np.asarray(x, np.float64)
    k = axis % x.ndim
    flat = x.reshape(int(np.prod(x.shape[:k], dtype=np.int64)), -1)
    e = np.exp(flat - flat.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape).astype(np.float32)


# Activation functions of LSTM-14 / GRU-14 / RNN-14, with the defaults of "the corresponding
# ONNX operators" for alpha and beta (None: the function takes none).
_ACTIVATIONS = {
    "Relu": (None, None, lambda v, a, b: np.maximum(v, 0)),
    "Tanh": (None, None, lambda v, a, b: np.tanh(v)),
    "Sigmoid": (None, None, lambda v, a, b: 1 / (1 + np.exp(-v))),
    "Affine": (1.0, 0.0, lambda v, a, b: a * v + b),
    "LeakyRelu": (0.01, None, lambda v, a, b: np.where(v >= 0, v, a * v)),
    "ThresholdedRelu": (1.0, None, lambda v, a, b: np.where(v >= a, v, 0)),
    "ScaledTanh": (1.0, 1.0, lambda v, a, b: a * np.tanh(b * v)),
    "HardSigmoid": (0.2, 0.5, lambda v, a, b: np.minimum(np.maximum(a * v + b, 0), 1)),
    "Elu": (1.0, None, lambda v, a, b: np.where(v >= 0, v, a * (np.exp(v) - 1))),
    "Softsign": (None, None, lambda v, a, b: v / (1 + np.abs(v))),
    "Softplus": (None, None, lambda v, a, b: np.log1p(np.exp(v))),
}
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


def _activation_functions(op, names, alpha, beta, directions):
    """One callable per activation, for each direction. "activation_alpha/beta ... are
    consumed in the order of activation functions", each by the functions that take one."""
    names = list(names or _DEFAULT_ACTIVATIONS[op] * directions)
    alpha, beta = list(alpha or []), list(beta or [])
    functions = []
    for name in names:
        default_a, default_b, fn = _ACTIVATIONS[name]
        a = alpha.pop(0) if default_a is not None and alpha else default_a
        b = beta.pop(0) if default_b is not None and beta else default_b
        functions.append(lambda v, fn=fn, a=a, b=b: fn(v, a, b))
    per = len(names) // directions
    return [functions[d * per:(d + 1) * per] for d in range(directions)]


def recurrence(op, x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, *,
               hidden_size, direction="forward", activations=None, activation_alpha=None,
               activation_beta=None, clip=None, linear_before_reset=0, clip_cell_for_h=True):
    """LSTM-14, GRU-14 or RNN-14 with ``layout=0``: returns ``[Y, Y_h]`` (and ``Y_c`` for LSTM).

    The equations of the docs, per direction (``reverse`` reads the sequence backwards):
    - LSTM (gates iofc, peepholes iof): ``i = f(X Wi' + H Ri' + Pi.C + Wbi + Rbi)``, ``f`` and
      ``o`` alike (``o`` with the new C), ``c = g(X Wc' + H Rc' + Wbc + Rbc)``,
      ``C = f.C + i.c``, ``H = o.h(C)``;
    - GRU (gates zrh): ``z = f(...)``, ``r = f(...)``, ``h = g(X Wh' + (r.H) Rh' + Rbh + Wbh)``,
      or with ``linear_before_reset`` ``g(X Wh' + r.(H Rh' + Rbh) + Wbh)``; ``H = (1-z).h + z.H``;
    - RNN: ``H = f(X Wi' + H Ri' + Wbi + Rbi)``.
    ``clip`` "bounds the elements ... and is applied to the input of activations": the gates'
    inputs, and (``clip_cell_for_h``, the literal reading) the cell state as the input of ``h``;
    implementations differ on that last one, so a test can check its inputs avoid it.
    ``sequence_lens`` gives each batch entry's length: its steps past the length are not
    computed (the spec leaves their ``Y`` open; zeros here, as onnxruntime writes) and its
    ``Y_h`` is the state after its last step.
    """
    x = np.asarray(x, np.float64)
    seq, batch, _ = x.shape
    directions = 2 if direction == "bidirectional" else 1
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    b = np.zeros((directions, 2 * gates * hidden_size)) if b is None else np.asarray(b, np.float64)
    lens = np.full(batch, seq) if sequence_lens is None else np.asarray(sequence_lens)
    zeros = np.zeros((directions, batch, hidden_size))
    h0 = zeros if initial_h is None else np.asarray(initial_h, np.float64)
    c0 = zeros if initial_c is None else np.asarray(initial_c, np.float64)
    p = np.zeros((directions, 3 * hidden_size)) if p is None else np.asarray(p, np.float64)
    functions = _activation_functions(op, activations, activation_alpha, activation_beta, directions)
    bound = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    y = np.zeros((seq, directions, batch, hidden_size))
    y_h, y_c = np.zeros_like(zeros), np.zeros_like(zeros)
    for d in range(directions):
        backwards = direction == "reverse" or d == 1
        wd, rd = np.asarray(w[d], np.float64), np.asarray(r[d], np.float64)
        wb, rb = np.split(b[d], 2)
        act = functions[d]
        for n in range(batch):
            h, c = h0[d, n], c0[d, n]
            steps = range(lens[n] - 1, -1, -1) if backwards else range(lens[n])
            for t in steps:
                xw = x[t, n] @ wd.T + wb
                if op == "LSTM":
                    gi, go, gf, gc = np.split(xw + h @ rd.T + rb, 4)
                    pi, po, pf = np.split(p[d], 3)
                    i_t = act[0](bound(gi + pi * c))
                    f_t = act[0](bound(gf + pf * c))
                    c = f_t * c + i_t * act[1](bound(gc))
                    h = act[0](bound(go + po * c)) * act[2](bound(c) if clip_cell_for_h else c)
                elif op == "GRU":
                    xz, xr, xh = np.split(xw, 3)
                    (rz, rr, rh), (bz, br, bh) = np.split(rd, 3), np.split(rb, 3)
                    z_t = act[0](bound(xz + h @ rz.T + bz))
                    r_t = act[0](bound(xr + h @ rr.T + br))
                    inner = r_t * (h @ rh.T + bh) if linear_before_reset else (r_t * h) @ rh.T + bh
                    h = (1 - z_t) * act[1](bound(xh + inner)) + z_t * h
                else:
                    h = act[0](bound(xw + h @ rd.T + rb))
                y[t, d, n] = h
            y_h[d, n], y_c[d, n] = h, c
    outputs = [y.astype(np.float32), y_h.astype(np.float32)]
    return outputs + [y_c.astype(np.float32)] if op == "LSTM" else outputs
