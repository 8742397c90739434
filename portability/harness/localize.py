"""Find where a failing route's drift begins (``first_divergence``), per pair of runtimes.

============================ =====================================================
reference -> candidate       how intermediates are matched
============================ =====================================================
torch -> torch               module hooks on both sides, by module path and call
torch -> ONNX                hooks vs every ONNX value, by the module scopes the
                             exporters write on the nodes (``taps.match_onnx``)
torch -> TF SavedModel       the same, on our translator replaying the ONNX graph
                             the SavedModel was translated from, value by value
ONNX -> ONNX                 every value, by name
ONNX -> TF SavedModel        our translator's replay of the reference ONNX, by name
============================ =====================================================

A torch reference is also run in float64, so each layer is judged against its
own noise floor; otherwise against the float32 reference and atol. Any other
pair (a TensorFlow reference) gives None: nothing can be matched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from portability.harness.divergence import Divergence, Tap, locate
from portability.harness.drift import default_tolerance
from portability.harness.evaluate import Subject, load_artifact
from portability.harness.noise_floor import float64_feed, float64_mode
from portability.harness.taps import Call, match_onnx, onnx_values, torch_calls, value_order

logger = logging.getLogger(__name__)


def localize(subject: Subject, feed: dict[str, np.ndarray], input_names: list[str],
             reference: tuple[Path, str, str | None], candidate: tuple[Path, str, str | None],
             translated_from: Path | None = None, ckpt=None) -> tuple[Divergence | None, str]:
    """The first divergence between a reference and a candidate artifact.

    Args:
        subject: what is checked.
        feed: the drift batch.
        input_names: the reference's input names.
        reference / candidate: (path, format, model spec) of each side.
        translated_from: for a SavedModel candidate, the ONNX file it was translated
            from when that is the reference itself (an ``onnx->tf-savedmodel`` step).
        ckpt: the weights a SavedModel candidate was written from (a torch reference's).

    Returns:
        (the ``Divergence`` or None, a note saying how it was located or why not).
    """
    try:
        return _localize(subject, feed, input_names, reference, candidate, translated_from, ckpt)
    except Exception as exc:  # locating is a diagnosis; its failure must not change the verdict
        logger.debug("localizing the divergence failed", exc_info=True)
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return None, f"first divergence not located ({type(exc).__name__}: {first})"


def _localize(subject, feed, input_names, reference, candidate, translated_from, ckpt):
    ref_path, ref_fmt, ref_model = reference
    cand_path, cand_fmt, cand_model = candidate
    atol, rtol = default_tolerance(np.float32)
    if ref_fmt == "onnx":
        proto, ref_values = onnx_values(ref_path, feed)
        if cand_fmt == "onnx":
            cand_values = onnx_values(cand_path, feed)[1]
            how = "ONNX values matched by name"
        elif cand_fmt == "tf-savedmodel":
            cand_values = _translated_values(proto, None, feed, _folder(ref_path))
            how = "ONNX values matched by name in our translator's replay of the reference"
        else:
            return None, "first divergence: nothing to match an ONNX reference with in a torch model"
        taps = [Tap(path or name, op, ref_values[name], None, cand_values[name])
                for name, op, path in value_order(proto.graph, ref_values) if name in cand_values]
        return locate(taps, atol, rtol), f"first divergence: {how} (against the float32 reference and atol)"
    ref_calls, truth_calls = _torch_sides(subject, ref_path, ref_fmt, ref_model, feed, input_names)
    if ref_calls is None:
        return None, "first divergence: the reference is not a torch model; nothing can be matched"
    truth = {c.key: c.tensors for c in truth_calls or []}
    if cand_fmt == "onnx":
        proto, values = onnx_values(cand_path, feed)
        pairs = match_onnx(ref_calls, proto.graph, values)
        how = "torch modules matched to ONNX nodes by their module scopes"
    elif cand_fmt == "tf-savedmodel":
        proto, folder = _graph_of(subject, ref_model, ckpt, translated_from)
        values = _translated_values(proto, ckpt if translated_from is None else None, feed, folder)
        pairs = match_onnx(ref_calls, proto.graph, values)
        how = "torch modules matched to the translated graph's values by module scopes"
    else:
        cand_calls, _ = _torch_sides(subject, cand_path, cand_fmt, cand_model, feed, input_names, float64=False)
        by_key = {c.key: c for c in cand_calls or []}
        pairs = [(c, c.op, by_key[c.key].value, 0) for c in ref_calls if c.key in by_key]
        how = "torch modules matched by path"
    if not pairs:
        return None, f"first divergence: no intermediate tensor could be matched ({how})"
    taps = [Tap(call.key, op, call.tensors[which], _nth(truth.get(call.key), which), value)
            for call, op, value, which in pairs]
    basis = "float64 noise floors" if truth else "atol"
    return locate(taps, atol, rtol), f"first divergence: {how}, judged against {basis}"


def _nth(tensors: list[np.ndarray] | None, which: int) -> np.ndarray | None:
    return None if tensors is None or which >= len(tensors) else tensors[which]


def _torch_sides(subject: Subject, path: Path, fmt: str, model: str | None, feed, input_names,
                 float64: bool = True) -> tuple[list[Call] | None, list[Call] | None]:
    """Module calls of a torch-run artifact in float32 and (when asked) float64."""
    loaded = load_artifact(Path(path), fmt, subject, model, input_names)
    try:
        module = loaded.module
        if module is None:
            return None, None
        names = loaded.output_names
        calls = torch_calls(module, feed, names)
        truth = None
        if float64:
            try:
                with float64_mode(module)[0]:
                    truth = torch_calls(module, float64_feed(feed), names)
            except Exception:  # no float64 run: layers are judged against atol
                truth = None
        return calls, truth
    finally:
        loaded.close()


def _graph_of(subject: Subject, model: str | None, ckpt, translated_from: Path | None):
    """The ONNX graph a SavedModel candidate was translated from, and the folder of its
    external data (None when the weights are in the proto)."""
    if translated_from is not None:
        from portability.adapters.onnx.safety import load_proto

        return load_proto(translated_from, load_external=False), _folder(translated_from)
    from portability.adapters.tf_savedmodel.export_route import onnx_graph_for
    from portability.core.options import WriteOptions
    from portability.harness.route_steps import write_options

    return onnx_graph_for(ckpt, WriteOptions(model=model, inputs=write_options(subject).inputs)), None


def _folder(onnx_path: Path) -> Path:
    from portability.adapters.onnx.safety import model_file

    return model_file(onnx_path).parent


def _translated_values(proto: Any, ckpt, feed: dict[str, np.ndarray], folder: Path | None) -> dict[str, np.ndarray]:
    from portability.adapters.tf_savedmodel.graph import safe_name, translate

    module = translate(proto, ckpt, base=folder)
    return module.trace_values(**{safe_name(k): v for k, v in feed.items()})
