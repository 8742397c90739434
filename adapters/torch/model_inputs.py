"""Example inputs for a model spec: a fixture's batch, an ``.npz``, a tokenizer, or synthesized.

Exports trace the model on these; the harness runs both sides on them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from portability.adapters.torch.models import forward_parameters
from portability.core import fallbacks
from portability.core.model_spec import ModelSpec, parse_model_spec
from portability.errors import FormatError, UsageError

SENTENCES = (
    "Checkpoints should survive the trip between frameworks.",
    "A converted model is only useful if it still predicts the same thing.",
)
SYNTH_BATCH, SYNTH_SEQ = 2, 8
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")


def example_inputs(spec: str | ModelSpec, model: torch.nn.Module,
                   inputs_path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Inputs for the model (see ``_example_inputs``), with float inputs cast to the
    model's floating dtype, so an fp16 or bf16 checkpoint runs on its own precision."""
    return match_float_dtype(_example_inputs(spec, model, inputs_path), model)


def match_float_dtype(feed: dict[str, np.ndarray], model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Cast floating-point inputs to the dtype of the model's floating parameters."""
    from portability.adapters.torch.numpy_bridge import tensor_to_numpy

    floating = [p for p in model.parameters() if p.is_floating_point()]
    if not floating or floating[0].dtype == torch.float32:
        return feed
    target = tensor_to_numpy(torch.zeros((), dtype=floating[0].dtype)).dtype
    return {k: v.astype(target) if np.issubdtype(v.dtype, np.floating) else v for k, v in feed.items()}


def _example_inputs(spec: str | ModelSpec, model: torch.nn.Module,
                    inputs_path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Inputs to run or export the model with, by forward-parameter name.

    Taken from ``inputs_path`` (an ``.npz``) when given, else from the fixture's
    evaluation batch, else from the tokenizer in an ``hf:`` directory applied to
    a few built-in sentences. Without any of these (a directory without tokenizer
    files, a factory spec), they are synthesized from the model's config:
    ``input_ids`` within ``vocab_size``, ``attention_mask`` and ``token_type_ids``;
    that is a fallback, recorded with ``portability.core.fallbacks``.

    Raises:
        UsageError: no source of inputs applies, the ``.npz`` is unreadable, or the
            tokenizer's outputs fit none of the forward parameters.
        FormatError: the directory's tokenizer files cannot be loaded.
    """
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    params = forward_parameters(model)
    if inputs_path is not None:
        return _inputs_from_npz(Path(inputs_path), params)
    if spec.kind == "fixture":
        from portability.fixtures import get_fixture

        return dict(get_fixture(spec.target).eval_batch())
    if spec.kind == "hf":
        found = [f for f in _TOKENIZER_FILES if (spec.directory / f).is_file()]
        if found:
            return _tokenized(spec.directory, params, found)
        missing = f"{spec.directory} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)})"
    else:
        missing = "no inputs were given (--inputs)"
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "vocab_size", None):
        fallbacks.record(f"model {spec}: {missing}: the example inputs are token ids synthesized from its "
                         "config, not text (pass --inputs FILE.npz)")
        return synthesize_text_inputs(config, params)
    raise UsageError(f"model {spec}: cannot make example inputs (no config with vocab_size); "
                     f"pass --inputs FILE.npz with arrays named {', '.join(params) or 'after forward()'}")


def synthesize_text_inputs(config: Any, params: list[str], batch: int = SYNTH_BATCH,
                           seq: int = SYNTH_SEQ, seed: int = 0) -> dict[str, np.ndarray]:
    """Token inputs from a text model's config: ids inside the vocabulary, a
    mask with the second row padded by two, and zero token types."""
    rng = np.random.default_rng(seed)
    out = {"input_ids": rng.integers(0, int(config.vocab_size), size=(batch, seq), dtype=np.int64)}
    if "attention_mask" in params:
        mask = np.ones((batch, seq), dtype=np.int64)
        if batch > 1:
            mask[1, -2:] = 0
        out["attention_mask"] = mask
    if "token_type_ids" in params and getattr(config, "type_vocab_size", 0):
        out["token_type_ids"] = np.zeros((batch, seq), dtype=np.int64)
    return out


def _inputs_from_npz(path: Path, params: list[str]) -> dict[str, np.ndarray]:
    from portability.adapters.torch.archive import ZIP_ERRORS, describe

    try:
        if path.is_file() and not zipfile.is_zipfile(path):
            raise UsageError(f"{path}: not an .npz archive (write one with numpy.savez)")
        with np.load(path, allow_pickle=False) as data:
            feed = {k: data[k] for k in data.files}
    except ZIP_ERRORS as exc:  # a damaged archive fails in zipfile's many ways
        raise UsageError(f"{path}: cannot read inputs ({describe(exc)})") from exc
    if not feed:
        raise UsageError(f"{path}: holds no arrays (expected {', '.join(params)})")
    return feed


def _tokenized(directory: Path, params: list[str], files: list[str]) -> dict[str, np.ndarray]:
    """The directory's tokenizer applied to ``SENTENCES``, keeping what forward takes.

    Raises:
        FormatError: the tokenizer files (``files``) cannot be loaded.
        UsageError: none of the tokenizer's outputs is a forward parameter.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except Exception as exc:  # transformers and tokenizers raise OSError, ValueError and their own kinds
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise FormatError(f"{directory}: its tokenizer ({', '.join(files)}) cannot be loaded "
                          f"({type(exc).__name__}: {first}); repair it or pass --inputs FILE.npz") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    encoded = tokenizer(list(SENTENCES), padding=True, return_tensors="np")
    feed = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in params}
    if not feed:
        raise UsageError(f"{directory}: the tokenizer gives {', '.join(encoded)}, none of which the model's "
                         f"forward takes ({', '.join(params)}); pass --inputs FILE.npz")
    return feed
