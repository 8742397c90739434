"""Convert a checkpoint from one format to another, atomically."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portability.core.accounting import check_training_kept, check_written, training_pieces
from portability.core.atomic import atomic_output, atomic_pair, check_destination
from portability.core.checkpoint import Checkpoint
from portability.core.dynamic_axes import parse_dynamic
from portability.core.formats import (
    FORMATS,
    ReadOptions,
    WriteOptions,
    detect,
    format_from_name,
    load_adapter,
    spec_for,
)
from portability.core.model_spec import parse_model_spec
from portability.errors import FormatError, UsageError

logger = logging.getLogger(__name__)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*$", re.IGNORECASE)
# Extensions many tools use for any binary checkpoint; --to may override them.
GENERIC_SUFFIXES = (".bin", ".ckpt")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
          "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_size(text: str) -> int:
    """Parse ``"500MB"``, ``"2GiB"``, ``"1048576"`` into bytes.

    Raises:
        UsageError: not a size.
    """
    match = _SIZE.match(text)
    unit = match.group(2).upper() if match else None
    if not match or unit not in _UNITS:
        raise UsageError(f"cannot read {text!r} as a size (examples: 500MB, 2GiB, 1048576)")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise UsageError(f"size {text!r} must be positive")
    return size


@dataclass
class ConvertResult:
    """What a conversion did."""

    source: Path
    source_format: str
    destination: Path
    destination_format: str
    tensors: int
    training_state: bool
    training_state_written: bool = True
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line saying what was written, and whether the training state travelled."""
        if not self.training_state:
            training = ""
        elif self.training_state_written:
            training = " with training state"
        else:
            training = f"; training state not stored in {self.destination_format}"
        line = (f"wrote {self.destination} ({self.destination_format}, {self.tensors} tensors{training}) "
                f"from {self.source} ({self.source_format})")
        return "\n".join([line] + [f"  note: {note}" for note in self.notes])


def read_checkpoint(path: str | Path, fmt: str | None = None,
                    options: ReadOptions | None = None) -> tuple[Checkpoint, str]:
    """Read any supported checkpoint; returns it and its format name."""
    fmt = fmt or detect(path)
    adapter = load_adapter(fmt)
    return adapter.read(Path(path), options or ReadOptions()), fmt


def destination_format(dst: Path, to: str | None, shard_size: int | str | None = None,
                       source_format: str | None = None) -> str:
    """The format to write: ``to`` if given, else implied by the destination's name.

    ``to`` overrides a generic extension (``.bin``, ``.ckpt``), but not one that
    names another format (``x.onnx --to safetensors`` would write a file that
    every reader, this one included, takes for ONNX).

    A destination without an extension and a shard size means a sharded
    safetensors directory; without an extension, from an ONNX source, a SavedModel
    (the one directory format that stores a graph).

    Raises:
        UsageError: neither tells, the name contradicts ``to``, or the name is an
            index file rather than a directory.
    """
    fmt: str | None
    if to:
        spec_for(to)
        fmt = to
        named = format_from_name(dst)
        if named not in (None, to) and dst.suffix.lower() not in GENERIC_SUFFIXES:
            raise UsageError(f"{dst}: the name says {named} but --to says {to}; give the "
                             f"destination a name that fits {to}")
    else:
        fmt = format_from_name(dst)
        if fmt is None and dst.is_dir():
            try:
                fmt = detect(dst)
            except FormatError:  # an existing directory without a checkpoint tells nothing
                fmt = None
        if fmt is None and shard_size is not None and not dst.suffix:
            fmt = "safetensors"
        if fmt is None and source_format == "onnx" and not dst.suffix:
            fmt = "tf-savedmodel"
    if dst.name.endswith(".index.json"):
        raise UsageError(f"{dst}: write sharded checkpoints to a directory; the index file "
                         "is created inside it")
    if fmt is None:
        raise UsageError(f"cannot tell the format of {dst} from its name; pass --to "
                         "(torch, safetensors, onnx, tf-savedmodel, dcp)")
    return fmt


def convert(src: str | Path, dst: str | Path, *, to: str | None = None, source_format: str | None = None,
            shard_size: int | str | None = None, overwrite: bool = False, trust_pickle: bool = False,
            model: str | None = None, opset: int | None = None,
            inputs: str | Path | None = None, weights_key: str | None = None,
            durable: bool = True, weights_only: bool = False,
            dynamic: str | Iterable[str] | Mapping[str, Iterable[int]] | None = None) -> ConvertResult:
    """Convert ``src`` to ``dst``. Nothing appears under ``dst`` unless it completes.

    ``inputs`` (an ``.npz``) gives graph exports their example inputs, and
    ``dynamic`` (``"image=0,2,3"`` items or ``{"image": [0, 2, 3]}``) the input axes
    they keep symbolic besides the defaults.
    ``durable=False`` skips the fsync before publishing (``WriteOptions.durable``).
    ``weights_key`` (``KEY[.SUB]``) says where the weights sit in a nested torch
    checkpoint. After the write, the output is read back and must account for
    every tensor of the source and every piece of its training state
    (``portability.core.accounting``). A destination that cannot store the
    source's optimizer, scheduler or RNG state is refused unless ``weights_only``,
    which writes the weights alone (training files are then not even read).

    Raises:
        UsageError: bad options, or ``dst`` exists without ``overwrite``.
        FormatError, IntegrityError, UnsafeCheckpointError: bad input.
        WriteError: writing failed part-way (e.g. disk full), the output lost
            tensors or training state of the source, or the destination cannot store
            that training state and ``weights_only`` is off; nothing is left.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise UsageError(f"{dst}: source and destination are the same")
    src_fmt = source_format or detect(src)
    dst_fmt = destination_format(dst, to, shard_size, src_fmt)
    check_destination(dst, overwrite)
    if overwrite and dst.is_dir():
        check_replaceable_directory(src, dst)
    if isinstance(shard_size, str):
        shard_size = parse_size(shard_size)
    if shard_size is not None and dst_fmt != "safetensors":
        raise UsageError(f"--shard-size applies to safetensors output, not {dst_fmt}")
    check_graph_options(dst_fmt, model, opset, inputs, src_fmt)
    declared = parse_dynamic(dynamic)
    if declared and (not spec_for(dst_fmt).stores_graph or model is None):
        raise UsageError("--dynamic applies to graph exports from a model (--model SPEC, to onnx or "
                         "tf-savedmodel); a graph translated from another keeps that graph's axes")
    if weights_key is not None and src_fmt != "torch":
        raise UsageError(f"--weights-key applies to torch checkpoints, not {src_fmt}")
    ckpt, _ = read_checkpoint(src, src_fmt, ReadOptions(trust_pickle=trust_pickle, weights_key=weights_key,
                                                        weights_only=weights_only))
    notes: list[str] = []
    if weights_only and ckpt.training is not None:
        dropped = [p for p in training_pieces(ckpt.training) if ":" not in p]
        notes.append(f"--weights-only: training state not written ({', '.join(dropped)})")
        ckpt.training, ckpt.layout = None, "state_dict"
    check_training_kept(ckpt, None, spec_for(dst_fmt).keeps_training_state, dst, dst_fmt)
    if not ckpt.tensors and not spec_for(dst_fmt).stores_graph:
        raise FormatError(f"{src}: no weights found (no initializers, no weight-carrying Constant nodes); "
                          f"nothing to write to {dst_fmt}")
    if src_fmt == "tf-savedmodel" and model is not None and not spec_for(dst_fmt).stores_graph:
        ckpt, ported = _port_keras(src, ckpt, model, inputs)
        notes += ported
        model = inputs = None
    writer = load_adapter(dst_fmt)
    from_graph = graph_source(src, src_fmt, dst_fmt, model)
    options = WriteOptions(shard_size=shard_size, model=model, opset=opset,
                           inputs=str(inputs) if inputs else None, durable=durable, dynamic=declared,
                           **from_graph)
    logger.info("converting %s (%s) to %s (%s): %d tensors", src, src_fmt, dst, dst_fmt, len(ckpt.tensors))
    data_file = _onnx_data_file(dst, dst_fmt, ckpt, from_graph)
    if data_file is not None:  # past protobuf's 2 GiB: the graph and its weights, published together
        notes.append(f"the weights take more than protobuf's 2 GiB limit: written as external data in "
                     f"{data_file.name} beside {dst.name} (move the two files together)")
        with atomic_pair(dst, data_file, overwrite=overwrite, durable=durable) as stage:
            writer.write(ckpt, stage / dst.name, dataclasses.replace(options, external_data=True))
            check_written(ckpt, stage / dst.name, dst_fmt, where=dst)
        return ConvertResult(src, src_fmt, dst, dst_fmt, len(ckpt.tensors), ckpt.training is not None,
                             spec_for(dst_fmt).keeps_training_state, notes)
    if dst_fmt == "onnx" and dst.suffix == ".onnx" and not from_graph:
        options = dataclasses.replace(options, external_data=False)  # data beside a temporary name would dangle
    with atomic_output(dst, overwrite=overwrite, durable=durable) as tmp:
        writer.write(ckpt, tmp, options)
        if not from_graph:  # a graph translated as a whole keeps its own tensor names
            check_written(ckpt, tmp, dst_fmt, where=dst)
    return ConvertResult(src, src_fmt, dst, dst_fmt, len(ckpt.tensors), ckpt.training is not None,
                         spec_for(dst_fmt).keeps_training_state, notes)


def _onnx_data_file(dst: Path, dst_fmt: str, ckpt: Checkpoint, from_graph: dict[str, Any]) -> Path | None:
    """``x.onnx.data`` when an exported ``x.onnx`` file needs external data (its weights pass
    protobuf's 2 GiB limit), else None."""
    if dst_fmt != "onnx" or dst.suffix != ".onnx" or from_graph:
        return None
    from portability.adapters.onnx.export import SINGLE_FILE_LIMIT, external_data_name

    total = sum(int(ckpt.tensors[n].nbytes) for n in ckpt.canonical_names())
    return dst.with_name(external_data_name(dst)) if total >= SINGLE_FILE_LIMIT else None


def _port_keras(src: Path, ckpt: Checkpoint, model: str, inputs: str | Path | None) -> tuple[Checkpoint, list[str]]:
    """Keras variables onto the twin ``model`` names, proven by outputs (``keras_port``).

    Raises:
        UsageError: the SavedModel is one this package wrote (already under state_dict names).
    """
    from portability.adapters.tf_savedmodel.keras_port import is_keras_native, port_to_twin

    if not is_keras_native(ckpt):
        raise UsageError(f"{src}: --model ports Keras variables onto a torch twin, but this SavedModel's "
                         "variables already carry state_dict names; convert it without --model")
    result = port_to_twin(src, ckpt, model, inputs)
    return result.checkpoint, result.notes


def graph_source(src: Path, src_fmt: str, dst_fmt: str, model: str | None) -> dict[str, Any]:
    """Graph-to-graph conversions without a model spec convert the source graph itself:
    ONNX -> SavedModel translates the ONNX file, SavedModel -> ONNX runs tf2onnx on it."""
    if model is not None:
        return {}
    if src_fmt == "onnx" and dst_fmt == "tf-savedmodel":
        from portability.adapters.onnx.safety import model_file

        return {"onnx_source": str(model_file(src))}
    if src_fmt == "tf-savedmodel" and dst_fmt == "onnx":
        return {"savedmodel_source": str(src)}
    return {}


def check_replaceable_directory(src: Path, dst: Path) -> None:
    """Refuse to replace a directory that is not a checkpoint, or that holds the source.

    ``--overwrite`` replaces the whole destination; a directory of other files
    (or the working directory) must never be swept away with it.

    Raises:
        UsageError: ``dst`` holds no checkpoint, or ``src`` lies inside it.
    """
    if dst.resolve() in src.resolve().parents:
        raise UsageError(f"{dst}: holds the source {src}; --overwrite would delete it (pick another destination)")
    try:
        detect(dst)
    except FormatError as exc:
        raise UsageError(f"{dst}: an existing directory that holds no checkpoint; --overwrite only "
                         "replaces checkpoints (remove it yourself or pick another destination)") from exc


def check_graph_options(dst_fmt: str, model: str | None, opset: int | None,
                        inputs: str | Path | None, src_fmt: str | None = None) -> None:
    """Check the graph-export options before anything is read.

    ``--model`` and ``--inputs`` also apply from a SavedModel to a weights-only
    format: they name the torch twin that Keras variables are ported onto.

    Raises:
        UsageError: an option given for a format that does not store a graph,
            a malformed model spec, an opset below 1, or a missing inputs file.
    """
    given = [flag for flag, value in (("--model", model), ("--opset", opset), ("--inputs", inputs))
             if value is not None]
    if src_fmt == "tf-savedmodel" and opset is None:
        given = []
    if given and not spec_for(dst_fmt).stores_graph:
        graph = ", ".join(name for name, spec in FORMATS.items() if spec.stores_graph)
        raise UsageError(f"{', '.join(given)}: only for formats that store a graph ({graph}), not {dst_fmt}")
    if model is not None:
        parse_model_spec(model)
    if opset is not None and opset < 1:
        raise UsageError(f"--opset {opset}: an ONNX opset is a positive integer (e.g. 18)")
    if inputs is not None and not Path(inputs).is_file():
        raise UsageError(f"{inputs}: --inputs file not found (an .npz of arrays named after the model's inputs)")
