"""LSTM, GRU and RNN translations: every direction, layout, sequence lengths, states."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")
import onnx_graphs
import spec_oracles

from portability.adapters.tf_savedmodel.graph import translate

RNG = np.random.default_rng(0)
SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 3
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _weights(op, directions):
    g = GATES[op] * HIDDEN
    w = RNG.standard_normal((directions, g, INPUT)).astype(np.float32) * 0.5
    r = RNG.standard_normal((directions, g, HIDDEN)).astype(np.float32) * 0.5
    b = RNG.standard_normal((directions, 2 * g)).astype(np.float32) * 0.1
    return w, r, b


@pytest.mark.slow
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_recurrence_matches_the_spec_with_lengths_and_states(op, direction, layout):
    """The spec's equations are the reference (onnx's evaluator ignores sequence_lens); the
    batch-first graph (layout=1) is compared with them on transposed data."""
    directions = 2 if direction == "bidirectional" else 1
    w, r, b = _weights(op, directions)
    x = RNG.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    feeds = {"x": x, "h0": RNG.standard_normal((directions, BATCH, HIDDEN)).astype(np.float32)}
    names, outputs = ["x", "w", "r", "b", "lens", "h0"], ["y", "y_h"]
    if op == "LSTM":
        feeds["c0"] = RNG.standard_normal((directions, BATCH, HIDDEN)).astype(np.float32)
        names.append("c0")
        outputs.append("y_c")
    constants = {"w": w, "r": r, "b": b, "lens": np.array([5, 2, 4], np.int32)}
    attrs = {"hidden_size": HIDDEN, "direction": direction}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    time_major = [onnx_graphs.node(op, names, outputs, **attrs)]
    spec = spec_oracles.recurrence(op, x, w, r, b, constants["lens"], feeds["h0"], feeds.get("c0"),
                                   hidden_size=HIDDEN, direction=direction,
                                   linear_before_reset=attrs.get("linear_before_reset", 0))
    expected, got = onnx_graphs.run_both(time_major, feeds, constants, opset=14, outputs=len(outputs),
                                         static=True, expected=spec)
    if layout:
        batch_first = [onnx_graphs.node(op, names, outputs, layout=1, **attrs)]
        swapped = {k: np.swapaxes(v, 0, 1) for k, v in feeds.items()}
        model = onnx_graphs.make_model(batch_first, swapped, constants, opset=14, outputs=len(outputs))
        module = translate(model)
        result = module.serve(*swapped.values())
        got = [result[k].numpy() for k in module.output_names]
        got = [np.transpose(got[0], (1, 2, 0, 3))] + [np.swapaxes(g, 0, 1) for g in got[1:]]
    for want, value in zip(expected, got, strict=True):
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-5)
    assert not got[0][2:, :, 1].any(), "steps past a sequence's length emit zeros"


@pytest.mark.parametrize("op,activations,alpha,beta", [
    ("LSTM", ["HardSigmoid", "LeakyRelu", "Softsign"], [0.3, 0.1], [0.4]),
    ("GRU", ["Sigmoid", "Relu"], [], []),
    ("RNN", ["ScaledTanh"], [1.5], [0.7]),
])
def test_activations_with_alpha_beta(op, activations, alpha, beta):
    """Against the spec: onnx's evaluator ignores the activations attribute (and clip)."""
    w, r, b = _weights(op, 1)
    x = RNG.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    attrs = {"hidden_size": HIDDEN, "activations": activations}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    nodes = [onnx_graphs.node(op, ["x", "w", "r", "b"], ["y", "y_h"], **attrs)]
    expected = spec_oracles.recurrence(op, x, w, r, b, hidden_size=HIDDEN, activations=activations,
                                       activation_alpha=alpha, activation_beta=beta)[:2]
    onnx_graphs.check(nodes, {"x": x}, {"w": w, "r": r, "b": b}, opset=14, outputs=2, expected=expected)


def test_lstm_peepholes_and_clip():
    """Large inputs, so the gates' inputs are clipped. The spec leaves open whether the cell
    state is clipped as the input of h: a forget-gate bias of -20 keeps the forget gate at
    sigmoid(-0.8) and the cell state under the clip, so both readings give the same values."""
    w, r, b = _weights("LSTM", 1)
    b[0, 2 * HIDDEN:3 * HIDDEN] = -20.0  # Wb[iofc]: the forget gate's bias
    p = RNG.standard_normal((1, 3 * HIDDEN)).astype(np.float32)
    x = RNG.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32) * 3
    nodes = [onnx_graphs.node("LSTM", ["x", "w", "r", "b", "", "", "", "p"], ["y", "y_h", "y_c"],
                              hidden_size=HIDDEN, clip=0.8)]
    expected = spec_oracles.recurrence("LSTM", x, w, r, b, p=p, hidden_size=HIDDEN, clip=0.8)
    other = spec_oracles.recurrence("LSTM", x, w, r, b, p=p, hidden_size=HIDDEN, clip=0.8, clip_cell_for_h=False)
    assert all(np.array_equal(a, o) for a, o in zip(expected, other, strict=True))
    unclipped = spec_oracles.recurrence("LSTM", x, w, r, b, p=p, hidden_size=HIDDEN)
    assert np.abs(unclipped[0] - expected[0]).max() > 1e-2  # the clip does change the outputs
    onnx_graphs.check(nodes, {"x": x}, {"w": w, "r": r, "b": b, "p": p}, opset=14, outputs=3, expected=expected)


def test_time_loop_is_a_tf_loop_and_the_sequence_length_stays_dynamic():
    w, r, b = _weights("GRU", 1)
    x = RNG.standard_normal((SEQ, BATCH, INPUT)).astype(np.float32)
    nodes = [onnx_graphs.node("GRU", ["x", "w", "r", "b"], ["y", "y_h"], hidden_size=HIDDEN)]
    model = onnx_graphs.make_model(nodes, {"x": x}, {"w": w, "r": r, "b": b}, opset=14, outputs=2)
    module = translate(model)
    graph = module.serve.get_concrete_function().graph
    kinds = {op.type for op in graph.get_operations()}
    assert kinds & {"While", "StatelessWhile"}, "expected a TF while loop"
    assert sum(op.type == "MatMul" for op in graph.get_operations()) < 10, "the steps are not unrolled"
    for steps in (1, 9):
        longer = RNG.standard_normal((steps, BATCH, INPUT)).astype(np.float32)
        y = module.serve(longer)[module.output_names[0]].numpy()
        assert y.shape == (steps, 1, BATCH, HIDDEN)


def test_input_forget_names_op_node_and_reason():
    from portability.errors import UnsupportedOpError

    w, r, b = _weights("LSTM", 1)
    nodes = [onnx_graphs.node("LSTM", ["x", "w", "r", "b"], ["y"], hidden_size=HIDDEN, input_forget=1)]
    model = onnx_graphs.make_model(nodes, {"x": np.zeros((2, 1, INPUT), np.float32)}, {"w": w, "r": r, "b": b})
    with pytest.raises(UnsupportedOpError, match=r"LSTM \(node 'lstm_node'\).*input_forget"):
        translate(model)
