"""Build the torch model a spec names, load a checkpoint into it, run it.

Used by graph exports (ONNX) and the torch eager runner; example inputs come
from ``torch_model_inputs``. Specs are parsed by
``portability.core.model_spec``; this module imports torch (and transformers for
``hf:`` specs) and returns ``nn.Module`` objects in eval mode.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from portability.adapters.torch.fitting import Fit, apply_fit, fit_tensors
from portability.adapters.torch.numpy_bridge import numpy_to_tensor, tensor_to_numpy
from portability.core.checkpoint import Checkpoint
from portability.core.layout_search import candidates_in
from portability.core.model_spec import ModelSpec, parse_model_spec
from portability.errors import FormatError, UsageError


def build_model(spec: str | ModelSpec, ckpt: Checkpoint | None = None) -> torch.nn.Module:
    """Build the model a spec names, with the checkpoint's weights, in eval mode.

    Args:
        spec: a model spec (see ``portability.core.model_spec``).
        ckpt: weights to load. None means the spec's own weights: the fixture's
            pretrained checkpoint or the weights in the ``hf:`` directory.

    Returns:
        The model. Its floating parameters take the dtype of the checkpoint's
        floating tensors, so an fp16 checkpoint gives an fp16 model.

    Raises:
        UsageError: the spec cannot be built (unknown fixture, factory or architecture).
        FormatError: the checkpoint's names or shapes do not fit the model.
    """
    return build_fitted_model(spec, ckpt)[0]


def build_fitted_model(spec: str | ModelSpec, ckpt: Checkpoint | None = None) -> tuple[torch.nn.Module, Fit | None]:
    """``build_model``, and how the checkpoint fitted (None when the spec's own weights were used).

    Raises:
        UsageError, FormatError: as ``build_model``.
    """
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    if spec.kind == "fixture":
        model, fit = _fixture_model(spec, ckpt)
    elif spec.kind == "hf":
        model, fit = _hf_model(spec, ckpt)
    else:
        model = _factory_model(spec)
        fit = load_weights(model, ckpt, str(spec)) if ckpt is not None else None
    return model.eval(), fit


def load_weights(model: torch.nn.Module, ckpt: Checkpoint, where: str) -> Fit:
    """Load a checkpoint's tensors into a model, the way transformers does (see ``fitting``).

    When the checkpoint's weights do not fit but another candidate it keeps does
    (``model_ema`` or ``generator`` next to the default), that one is loaded.

    Returns:
        The ``Fit``: notes on stripped prefixes, ignored and re-tied names.

    Raises:
        FormatError: no candidate fits; the message is about the checkpoint's own weights.
    """
    dtype = _checkpoint_float_dtype(ckpt)
    if dtype is not None:
        model.to(dtype)
    candidates = candidates_in(ckpt)
    first_error: FormatError | None = None
    for i, (key, arrays) in enumerate(candidates):
        try:
            fit = fit_tensors(model, arrays, where)
        except FormatError as exc:
            first_error = first_error or exc
            continue
        if i:
            fit.weights_key = key
            fit.notes.insert(0, f"weights taken from {key!r}, the candidate that fits the model "
                                f"(the checkpoint's default {candidates[0][0]!r} does not)")
        apply_fit(model, fit)
        return fit
    raise first_error


def model_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The model's state_dict as numpy arrays with identical bits."""
    return {name: tensor_to_numpy(t, name) for name, t in model.state_dict().items()}


def forward_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the model's forward parameters, in order (no ``*args``/``**kwargs``)."""
    if isinstance(model, FixtureModule):
        return list(model.input_names)
    sig = inspect.signature(model.forward)
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def bind_inputs(model: torch.nn.Module, feed: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Match named inputs to the model's forward parameters.

    Names that are forward parameters bind by name; otherwise (a fixture whose
    inputs are called ``input`` for a ``forward(self, x)``) they bind by position.

    Returns:
        forward-parameter name -> feed name, in forward order.

    Raises:
        UsageError: the names fit neither way (lists the forward parameters).
    """
    params = forward_parameters(model)
    if all(n in params for n in feed):
        return {p: p for p in params if p in feed}
    if any(n in params for n in feed) or len(feed) > len(params):
        unknown = [n for n in feed if n not in params]
        raise UsageError(f"inputs {', '.join(unknown)} are not parameters of the model's forward "
                         f"({', '.join(params)})")
    return dict(zip(params, feed, strict=False))


def torch_feed(model: torch.nn.Module, feed: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The feed as torch tensors keyed by forward-parameter name, in forward order."""
    return {param: numpy_to_tensor(np.ascontiguousarray(feed[name]))
            for param, name in bind_inputs(model, feed).items()}


def run_model(model: torch.nn.Module, feed: Mapping[str, np.ndarray],
              output_names: tuple[str, ...] | list[str] | None = None) -> dict[str, np.ndarray]:
    """Run the model eagerly on named numpy inputs; return named numpy outputs."""
    with torch.inference_mode():
        out = model(**torch_feed(model, feed))
    return {n: tensor_to_numpy(t, n) for n, t in named_outputs(out, output_names).items()}


def named_outputs(out: Any, names: tuple[str, ...] | list[str] | None = None) -> dict[str, torch.Tensor]:
    """Flatten a model's output into names, in the order the ONNX exporter flattens it.

    A tensor is ``output`` (or ``names[0]``); a mapping (a transformers
    ``ModelOutput``) keeps its keys; a tuple gets ``output_0``, ``output_1``...
    unless ``names`` are given.

    Raises:
        FormatError: an output that is neither a tensor, a mapping nor a tuple of tensors.
    """
    if isinstance(out, torch.Tensor):
        flat = [("output", out)]
    elif isinstance(out, Mapping):
        flat = [(k, v) for k, v in out.items() if v is not None]
    elif isinstance(out, (tuple, list)):
        flat = [(f"output_{i}", v) for i, v in enumerate(out)]
    else:
        raise FormatError(f"model output of type {type(out).__name__} cannot be named")
    bad = [k for k, v in flat if not isinstance(v, torch.Tensor)]
    if bad:
        raise FormatError(f"model outputs {', '.join(bad)} are not tensors (nested outputs such as "
                          "caches cannot be exported; disable them, e.g. use_cache=False)")
    if names:
        if len(names) != len(flat):
            raise FormatError(f"model returns {len(flat)} outputs but {len(names)} names were given")
        return {n: v for n, (_, v) in zip(names, flat, strict=False)}
    return dict(flat)


def _fixture_model(spec: ModelSpec, ckpt: Checkpoint | None) -> tuple[torch.nn.Module, Fit]:
    from portability.fixtures import get_fixture

    fixture = get_fixture(spec.target)
    if fixture.framework != "torch":
        raise UsageError(f"model {spec} is a {fixture.framework} fixture; this step needs a torch model")
    model = fixture.build()
    fit = load_weights(model, ckpt if ckpt is not None else fixture.pretrained(), str(spec))
    if callable(getattr(fixture, "forward", None)):
        return FixtureModule(model, fixture), fit
    return model, fit


class FixtureModule(torch.nn.Module):
    """A fixture's model called the fixture's way: ``forward`` takes the fixture's
    input names and returns its outputs as a tuple in ``output_names`` order.

    It holds the model's own children, parameters and buffers under the same
    names, so its state_dict (and the exported graph's initializers) keep the
    model's names.
    """

    def __init__(self, model: torch.nn.Module, fixture: Any) -> None:
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        for name, param in model.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, buf in model.named_buffers(recurse=False):
            self.register_buffer(name, buf, persistent=name not in model._non_persistent_buffers_set)
        object.__setattr__(self, "wrapped", model)  # not a submodule: names stay unprefixed
        object.__setattr__(self, "fixture", fixture)
        self.input_names = tuple(fixture.input_names)
        self.output_names = tuple(fixture.output_names)
        self._parameters_in_order = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in self.input_names])

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        bound = self._parameters_in_order.bind(*args, **kwargs).arguments
        outputs = self.fixture.forward(self.wrapped, dict(bound))
        return tuple(outputs[name] for name in self.output_names)

    def train(self, mode: bool = True) -> FixtureModule:
        super().train(mode)
        self.wrapped.train(mode)
        return self


def _hf_model(spec: ModelSpec, ckpt: Checkpoint | None) -> tuple[torch.nn.Module, Fit | None]:
    import transformers

    config_path = spec.directory / "config.json"
    try:
        architectures = json.loads(config_path.read_text()).get("architectures") or []
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"model {spec}: cannot read {config_path} ({exc})") from exc
    if not architectures:
        raise UsageError(f"model {spec}: {config_path} lists no architectures")
    cls = getattr(transformers, architectures[0], None)
    if cls is None:
        raise UsageError(f"model {spec}: transformers {transformers.__version__} has no class "
                         f"{architectures[0]!r}")
    config = transformers.AutoConfig.from_pretrained(spec.directory)
    config.use_cache = False
    if ckpt is None:
        return cls.from_pretrained(spec.directory, config=config), None
    with _empty_construction(_checkpoint_float_dtype(ckpt)):
        model = cls(config)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    fit = load_weights(model, ckpt, str(spec))
    if fit.left_initial:  # those keep the values the model draws at construction: build it that way
        model = cls(config)
        fit = load_weights(model, ckpt, str(spec))
    return model, fit


@contextlib.contextmanager
def _empty_construction(dtype: torch.dtype | None):
    """Construct a transformers model as ``from_pretrained`` does before loading weights:
    parameters allocated in the checkpoint's floating dtype (a bfloat16 checkpoint never
    has a float32 model built around it) and not drawn at random (the checkpoint
    overwrites them; drawing 500M parameters takes about 20 s on 2 cores)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # where a release keeps it beside the model base class
        from transformers.modeling_utils import no_init_weights  # type: ignore[no-redef,attr-defined]

    previous = torch.get_default_dtype()
    try:
        if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
        with no_init_weights():
            yield
    finally:
        torch.set_default_dtype(previous)


def _factory_model(spec: ModelSpec) -> torch.nn.Module:
    try:
        module = importlib.import_module(spec.target)
    except ImportError as exc:
        raise UsageError(f"model {spec}: cannot import {spec.target} ({exc})") from exc
    factory = getattr(module, spec.factory, None)
    if not callable(factory):
        raise UsageError(f"model {spec}: {spec.target} has no function {spec.factory!r}")
    try:
        model = factory()
    except Exception as exc:  # the user's code failed: name it, keep one line
        raise UsageError(f"model {spec}: calling {spec.factory}() failed: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"model {spec}: {spec.factory}() returned a {type(model).__name__}, "
                         "not a torch.nn.Module")
    return model


def _checkpoint_float_dtype(ckpt: Checkpoint) -> torch.dtype | None:
    counts: dict[torch.dtype, int] = {}
    for name in ckpt.canonical_names():
        t = numpy_to_tensor(np.empty((0,), dtype=ckpt.tensors[name].dtype))
        if t.is_floating_point():
            counts[t.dtype] = counts.get(t.dtype, 0) + int(ckpt.tensors[name].size)
    return max(counts, key=counts.get) if counts else None
