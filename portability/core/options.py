"""Typed options that every adapter method accepts (each adapter uses what applies).

Typed fields, not a dict of string keys: an option the harness forgets to pass is
then visible in the code that builds the options, and a typo is an error.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReadOptions:
    """Options for ``FormatAdapter.read``.

    Attributes:
        trust_pickle: allow pickles that need globals outside the safe allowlist.
        verify: check the checksums our writers record.
        weights_key: ``KEY[.SUB]``: where the weights sit in a nested torch
            checkpoint, overriding the search's default (torch sources only).
        weights_only: read the weights alone; training files that sit beside them
            (a Trainer directory's) are not opened.
    """

    trust_pickle: bool = False
    verify: bool = True
    weights_key: str | None = None
    weights_only: bool = False


@dataclass(frozen=True)
class WriteOptions:
    """Options for ``FormatAdapter.write``.

    Attributes:
        shard_size: largest shard in bytes, for formats that shard.
        model: model spec (``fixture:NAME``, ``hf:DIR``, ``pkg.mod:factory``), for
            formats that store a graph exported from a PyTorch model.
        opset: ONNX opset of graph exports.
        max_ir: the newest ONNX IR version a graph export may carry (a target runtime's);
            exports carry the lowest their opset and features allow in any case.
        inputs: an ``.npz`` of example inputs that graph exports trace the model on.
        onnx_source: an ONNX file to translate instead of exporting from ``model``.
        savedmodel_source: a TF SavedModel directory to convert (tf2onnx) instead of
            exporting from ``model``.
        external_data: ONNX only: keep weights in an external data file
            (directory destinations; None lets the adapter decide).
        dynamic: graph exports only: input axes to keep symbolic besides the defaults,
            as ``(name, axes)`` pairs (``portability.core.dynamic_axes``).
        durable: flush the output to disk (fsync) before it is published. Off,
            a killed process still leaves nothing half-written (the output is
            renamed into place only once complete), but an OS crash or power
            loss soon after may leave a damaged file, which the checksums we
            record then refuse on read; in exchange, the write runs at page
            cache speed instead of disk speed.
    """

    shard_size: int | None = None
    model: str | None = None
    opset: int | None = None
    max_ir: int | None = None
    inputs: str | None = None
    onnx_source: str | None = None
    savedmodel_source: str | None = None
    external_data: bool | None = None
    durable: bool = True
    dynamic: tuple[tuple[str, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class RunOptions:
    """Options for ``FormatAdapter.runner``.

    Attributes:
        model: model spec that builds the model, for formats that store weights only.
        trust_pickle: as in ``ReadOptions``.
        output_names: names for the model's flattened outputs (a fixture's own by default).
    """

    model: str | None = None
    trust_pickle: bool = False
    output_names: tuple[str, ...] | None = None
