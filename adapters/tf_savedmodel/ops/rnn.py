"""Recurrent ONNX ops: LSTM, GRU and RNN, each direction run by ``tf.scan``.

The time loop is a TF loop (the sequence length stays dynamic): the input
projection of every step is computed up front (one MatMul over all steps),
then ``tf.scan`` carries the state. Steps at or past a batch entry's ``sequence_lens`` keep its state and
emit zeros; the reverse direction reverses each entry's valid prefix.
Gate order follows ONNX: LSTM i, o, f, c (peepholes i, o, f); GRU z, r, h.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from portability.adapters.tf_savedmodel.ops.registry import register, unsupported

# name -> (function of (x, alpha, beta), how many of alpha/beta it consumes).
_ACTIVATIONS = {
    "relu": (lambda x, a, b: tf.nn.relu(x), 0),
    "tanh": (lambda x, a, b: tf.tanh(x), 0),
    "sigmoid": (lambda x, a, b: tf.sigmoid(x), 0),
    "softsign": (lambda x, a, b: tf.nn.softsign(x), 0),
    "softplus": (lambda x, a, b: tf.nn.softplus(x), 0),
    "affine": (lambda x, a, b: a * x + b, 2),
    "leakyrelu": (lambda x, a, b: tf.where(x >= 0, x, a * x), 1),
    "thresholdedrelu": (lambda x, a, b: tf.where(x > a, x, tf.zeros_like(x)), 1),
    "scaledtanh": (lambda x, a, b: a * tf.tanh(b * x), 2),
    "hardsigmoid": (lambda x, a, b: tf.clip_by_value(a * x + b, 0.0, 1.0), 2),
    "elu": (lambda x, a, b: tf.where(x >= 0, x, a * (tf.exp(x) - 1)), 1),
}
_DEFAULTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _activations(node, ctx, directions):
    """One list of callables per direction, alpha/beta consumed in order."""
    names = ctx.attr("activations") or _DEFAULTS[node.op_type] * directions
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    alphas, betas = list(ctx.attr("activation_alpha", [])), list(ctx.attr("activation_beta", []))
    fns = []
    for name in names:
        if name.lower() not in _ACTIVATIONS:
            raise unsupported(node, f"activation {name!r}")
        fn, consumed = _ACTIVATIONS[name.lower()]
        a = alphas.pop(0) if consumed >= 1 and alphas else 0.01
        b = betas.pop(0) if consumed >= 2 and betas else 0.0
        fns.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    per = len(_DEFAULTS[node.op_type])
    return [fns[d * per:(d + 1) * per] for d in range(directions)]


def _lstm_step(acts, r, rb, p, clip):
    f, g, h = acts

    def step(state, inputs):
        h_prev, c_prev, _ = state
        xw, mask = inputs
        gates = xw + tf.matmul(h_prev, r) + rb
        gi, go, gf, gc = tf.split(gates, 4, axis=-1)
        if p is not None:  # peepholes look at the previous cell (the new one for o)
            pi, po, pf = tf.split(p, 3)
            gi, gf = gi + pi * c_prev, gf + pf * c_prev
        i, fo = f(_clip(gi, clip)), f(_clip(gf, clip))
        c = fo * c_prev + i * g(_clip(gc, clip))
        o = f(_clip(go if p is None else go + po * c, clip))
        h_new = o * h(c)
        return _masked(mask, h_new, h_prev), _masked(mask, c, c_prev), _masked(mask, h_new, None)
    return step


def _gru_step(acts, r, rb, clip, linear_before_reset):
    f, g = acts
    rz, rr, rh = tf.split(r, 3, axis=1)
    bz, br, bh = tf.split(rb, 3)

    def step(state, inputs):
        h_prev, c_prev, _ = state
        xw, mask = inputs
        xz, xr, xh = tf.split(xw, 3, axis=-1)
        z = f(_clip(xz + tf.matmul(h_prev, rz) + bz, clip))
        rt = f(_clip(xr + tf.matmul(h_prev, rr) + br, clip))
        if linear_before_reset:
            candidate = xh + rt * (tf.matmul(h_prev, rh) + bh)
        else:
            candidate = xh + tf.matmul(rt * h_prev, rh) + bh
        ht = g(_clip(candidate, clip))
        h_new = (1 - z) * ht + z * h_prev
        return _masked(mask, h_new, h_prev), c_prev, _masked(mask, h_new, None)
    return step


def _rnn_step(acts, r, rb, clip):
    (f,) = acts

    def step(state, inputs):
        h_prev, c_prev, _ = state
        xw, mask = inputs
        h_new = f(_clip(xw + tf.matmul(h_prev, r) + rb, clip))
        return _masked(mask, h_new, h_prev), c_prev, _masked(mask, h_new, None)
    return step


def _clip(x, clip):
    return x if clip is None else tf.clip_by_value(x, -clip, clip)


def _masked(mask, new, old):
    """``new`` where the step is inside the sequence, else ``old`` (zeros if None)."""
    return tf.where(mask[:, None], new, tf.zeros_like(new) if old is None else old)


def _transposed(ctx, i, d):
    """Direction ``d`` of weight input ``i`` ([gates, in]) as [in, gates]: a plain MatMul
    is up to three times faster than one with transpose_b on a few rows. Transposed
    while translating when the weight is known, else once per call, outside the loop."""
    known = ctx.static_value(i)
    if known is not None:
        return tf.constant(np.ascontiguousarray(np.asarray(known)[d].T))
    return tf.transpose(ctx.input(i)[d])


def _run_direction(node, ctx, x, lens, d, reverse, acts, init_h, init_c):
    """One direction over time-major ``x``; returns (Y [T, B, H], last h, last c)."""
    kind = node.op_type
    hidden = ctx.attr("hidden_size")
    w, r = _transposed(ctx, 1, d), _transposed(ctx, 2, d)
    gates = _GATES[kind] * hidden
    if ctx.has_input(3):
        wb, rb = tf.split(ctx.input(3)[d], 2)
    else:
        wb = rb = tf.zeros([gates], x.dtype)
    steps = tf.shape(x)[0]
    if reverse:
        x = tf.reverse_sequence(x, lens, seq_axis=0, batch_axis=1)
    shape = tf.shape(x)
    inputs = w.shape[0] if w.shape[0] is not None else tf.shape(w)[0]
    xw = tf.reshape(tf.matmul(tf.reshape(x, [-1, inputs]), w), tf.stack([shape[0], shape[1], gates])) + wb
    mask = tf.range(steps, dtype=lens.dtype)[:, None] < lens[None, :]
    clip = ctx.attr("clip")
    if kind == "LSTM":
        p = ctx.input(7)[d] if ctx.has_input(7) else None
        step = _lstm_step(acts, r, rb, p, clip)
    elif kind == "GRU":
        step = _gru_step(acts, r, rb, clip, ctx.attr("linear_before_reset", 0))
    else:
        step = _rnn_step(acts, r, rb, clip)
    zeros = tf.zeros_like(init_h)
    h_seq, c_seq, y = tf.scan(step, (xw, mask), initializer=(init_h, init_c, zeros))
    if reverse:
        y = tf.reverse_sequence(y, lens, seq_axis=0, batch_axis=1)
    last_h = tf.cond(steps > 0, lambda: h_seq[-1], lambda: init_h)
    last_c = tf.cond(steps > 0, lambda: c_seq[-1], lambda: init_c)
    return y, last_h, last_c


@register("LSTM", "GRU", "RNN")
def recurrent(node, ctx):
    """Outputs Y, Y_h (and Y_c for LSTM), in the node's ``layout``."""
    if node.op_type == "LSTM" and ctx.attr("input_forget", 0):
        raise unsupported(node, "input_forget=1 (coupled input and forget gates)")
    x = ctx.input(0)
    layout = ctx.attr("layout", 0)
    if layout:
        x = tf.transpose(x, [1, 0, 2])
    direction = ctx.attr("direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    hidden = ctx.attr("hidden_size")
    batch = tf.shape(x)[1]
    steps = tf.shape(x)[0]
    lens = tf.cast(ctx.input(4), tf.int32) if ctx.has_input(4) else tf.fill([batch], steps)
    states = []
    for index in (5, 6):
        value = ctx.input(index) if ctx.has_input(index) else None
        if value is not None and layout:
            value = tf.transpose(value, [1, 0, 2])
        states.append(value)
    acts = _activations(node, ctx, directions)
    ys, hs, cs = [], [], []
    for d in range(directions):
        zero = tf.zeros(tf.stack([batch, hidden]), x.dtype)
        init_h = tf.ensure_shape(states[0][d] if states[0] is not None else zero, [None, hidden])
        init_c = tf.ensure_shape(states[1][d] if states[1] is not None else zero, [None, hidden])
        reverse = direction == "reverse" or d == 1
        y, h, c = _run_direction(node, ctx, x, lens, d, reverse, acts[d], init_h, init_c)
        ys.append(y)
        hs.append(h)
        cs.append(c)
    y = tf.stack(ys, axis=1)
    y_h, y_c = tf.stack(hs), tf.stack(cs)
    if layout:
        y = tf.transpose(y, [2, 0, 1, 3])
        y_h, y_c = tf.transpose(y_h, [1, 0, 2]), tf.transpose(y_c, [1, 0, 2])
    return (y, y_h, y_c) if node.op_type == "LSTM" else (y, y_h)
