"""The data a check runs on: the drift batches, the evaluation batches and their labels.

The drift batch is ``--inputs`` (else the fixture's batch, else the first
``--eval-data`` batch, else a Hugging Face directory's example inputs); each
further ``--inputs`` file is another drift batch (another shape, say), on which
every artifact runs and is judged. The evaluation batches that R is measured on
are every ``.npz`` of ``--eval-data`` in name order, else the drift batches. Labels travel in a batch under
``labels`` (or ``--labels KEY``); they are never fed to the model.

Which metric scores a model (``metric_for``): ``--metric`` if given; else a
fixture's own task metric; else, for a Hugging Face directory, one chosen from
its config (perplexity for ``*ForCausalLM`` and ``*LMHeadModel``; accuracy with labels, else
agreement, for ``*ForSequenceClassification``; cosine of ``pooler_output`` for a
bare encoder); else accuracy when there are labels and agreement when there are none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from portability.errors import UsageError
from portability.harness.metrics import BUILTINS, MetricSpec, parse_metric

Arrays = dict[str, np.ndarray]


@dataclass
class EvalData:
    """What the model is run on.

    Attributes:
        feed: the (first) drift batch, model inputs only.
        batches: the evaluation batches, model inputs plus labels.
        labels_key: the key of the labels in a batch.
        notes: remarks for the report (where the batches came from).
        more: the further drift batches, ``(inputs file, model inputs)``.
        first_label: the first drift batch's file when there are several, else None.
    """

    feed: Arrays
    batches: list[Arrays]
    labels_key: str = "labels"
    notes: list[str] = field(default_factory=list)
    more: list[tuple[str, Arrays]] = field(default_factory=list)
    first_label: str | None = None

    def drift_feeds(self) -> list[tuple[str | None, Arrays]]:
        """Every drift batch with the inputs file it came from (None for a lone batch)."""
        return [(self.first_label, self.feed), *self.more]

    @property
    def has_labels(self) -> bool:
        return bool(self.batches) and all(self.labels_key in b for b in self.batches)

    def model_feed(self, batch: Arrays) -> Arrays:
        """A batch without its labels: what the model is given."""
        return {k: v for k, v in batch.items() if k != self.labels_key}

    def feed_is_first_batch(self) -> bool:
        """Whether the drift batch is the first evaluation batch (its outputs can be reused)."""
        first = self.model_feed(self.batches[0]) if self.batches else {}
        return set(first) == set(self.feed) and all(first[k] is self.feed[k] for k in first)


def read_npz(path: str | Path, what: str = "inputs") -> Arrays:
    """Every array of an ``.npz`` by name.

    Raises:
        UsageError: the file cannot be read as ``.npz`` (names the file).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read {what} as .npz ({exc})") from exc


def eval_batches(directory: str | Path) -> list[Path]:
    """The ``.npz`` files of an ``--eval-data`` directory, in name order.

    Raises:
        UsageError: not a directory, or it holds no ``.npz``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise UsageError(f"--eval-data {root}: not a directory (give a directory of .npz batches)")
    files = sorted(p for p in root.iterdir() if p.suffix == ".npz" and p.is_file())
    if not files:
        raise UsageError(f"--eval-data {root}: holds no .npz batch")
    return files


def load_eval_data(inputs: str | None, eval_data: str | None, labels_key: str,
                   default_feed, more_inputs: tuple[str, ...] = ()) -> EvalData:
    """The drift batches and the evaluation batches.

    Args:
        inputs: the (first) ``--inputs`` file, or None.
        eval_data: the ``--eval-data`` directory, or None.
        labels_key: where labels are.
        default_feed: ``() -> arrays`` for the drift batch when neither file gives one
            (a fixture's batch, a Hugging Face directory's example inputs).
        more_inputs: further ``--inputs`` files.

    Raises:
        UsageError: unreadable files, no inputs at all, or a further inputs file
            whose input names differ from the first's.
    """
    notes: list[str] = []
    batches = [read_npz(p, "an evaluation batch") for p in eval_batches(eval_data)] if eval_data else []
    if inputs:
        drift = read_npz(inputs)
    elif batches:
        drift = batches[0]
    else:
        drift = default_feed()
    feed = {k: v for k, v in drift.items() if k != labels_key}
    if not feed:
        raise UsageError(f"{inputs or eval_data}: holds only labels ({labels_key!r}), no model input")
    more = [(path, read_npz(path)) for path in more_inputs]
    for path, arrays in more:
        if sorted(k for k in arrays if k != labels_key) != sorted(feed):
            raise UsageError(f"{path}: holds inputs {sorted(k for k in arrays if k != labels_key)}, the first "
                             f"--inputs file {inputs} holds {sorted(feed)}; every inputs file feeds the same model")
    if batches:
        notes.append(f"R measured on {len(batches)} batch(es) of {eval_data}")
    else:
        batches = [dict(feed, **({labels_key: drift[labels_key]} if labels_key in drift else {}))]
        batches += [arrays for _, arrays in more]
    if more:
        notes.append(f"outputs judged on each of {len(more) + 1} inputs files")
    if labels_key in drift or any(labels_key in b for b in batches):
        notes.append(f"labels read from {labels_key!r}, not fed to the model")
    feeds = [(path, {k: v for k, v in arrays.items() if k != labels_key}) for path, arrays in more]
    return EvalData(feed, batches, labels_key, notes, feeds, inputs if more else None)


def hf_default_metric(directory: str | Path, has_labels: bool) -> MetricSpec:
    """The metric a Hugging Face directory's config suggests (see the module doc)."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    archs = config.get("architectures") or []
    arch = archs[0] if archs else ""
    if arch.endswith(("ForCausalLM", "LMHeadModel")):
        return MetricSpec("perplexity")
    if arch.endswith("ForSequenceClassification"):
        return MetricSpec("accuracy" if has_labels else "agreement")
    if arch.endswith("Model") and "For" not in arch:
        return MetricSpec("cosine", output="pooler_output")
    return MetricSpec("accuracy" if has_labels else "agreement")


def metric_for(metric_text: str | None, higher_is_better: bool, model: str | None, has_fixture_metric: bool,
               has_labels: bool, labels_key: str = "labels") -> tuple[MetricSpec | None, bool]:
    """The metric that scores a subject, and whether the user chose it.

    Args:
        metric_text: ``--metric`` as given, or None.
        higher_is_better: direction of the user's own ``module:function``.
        model: the model spec (``hf:DIR`` picks a default from its config).
        has_fixture_metric: the subject has its own metric (a fixture, or a library callable).
        has_labels / labels_key: whether the batches hold labels, and under which key.

    Returns:
        (spec, chosen); spec None when the subject's own metric applies.

    Raises:
        UsageError: an unknown metric, or one that needs labels without them.
    """
    if metric_text:
        spec = parse_metric(metric_text, higher_is_better)
        if not spec.custom and BUILTINS[spec.name][1] == "required" and not has_labels:
            raise UsageError(f"--metric {spec.name} needs labels: put them in the inputs file under "
                             f"{labels_key!r} (or name the key with --labels KEY)")
        return spec, True
    if has_fixture_metric:
        return None, False
    if model and model.startswith("hf:"):
        return hf_default_metric(model[3:], has_labels), False
    return MetricSpec("accuracy" if has_labels else "agreement"), False


_FEED_FILES: dict[tuple, str] = {}


def export_inputs_file(inputs: str | None, eval_data: str | None, labels_key: str) -> str | None:
    """The ``.npz`` that graph exports trace the model on: ``inputs`` (else the first
    ``eval_data`` batch) without its labels; a label-free copy is written once per
    process when the file holds labels. None when neither is given.
    """
    source = inputs or (str(eval_batches(eval_data)[0]) if eval_data else None)
    if source is None:
        return None
    key = (source, labels_key)
    if key in _FEED_FILES:
        return _FEED_FILES[key]
    arrays = read_npz(source)
    if labels_key not in arrays:
        _FEED_FILES[key] = source
        return source
    import atexit
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="portability-feed-")
    atexit.register(shutil.rmtree, folder, True)
    path = str(Path(folder) / "inputs.npz")
    feed: dict[str, np.ndarray] = {k: v for k, v in arrays.items() if k != labels_key}
    np.savez(path, allow_pickle=False, **feed)
    _FEED_FILES[key] = path
    return path
