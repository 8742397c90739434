"""Check results: one ``RouteResult`` per route, gathered in a ``Report``.

Both are truthy when they passed (Polygraphy's ``AccuracyResult`` convention)
and serialise to JSON and back, so reports from different machines compare.
The JSON layout is versioned (``SCHEMA_VERSION``) and described by
``portability/schemas/report.schema.json``.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portability.harness.drift import OutputDrift, Tolerance
from portability.harness.recoverability import Recoverability
from portability.harness.weights import WeightReport

SCHEMA_VERSION = "1.6"
STATUSES = ("pass", "fail", "skipped", "error")
SCHEMA_PATH = Path(__file__).parent / "schemas" / "report.schema.json"


@dataclass
class RouteResult:
    """The verdict on one route of one checkpoint.

    Attributes:
        subject: what was checked (``fixture:mlp`` or a checkpoint path).
        route: format names in order, e.g. ``["torch", "onnx", "torch"]``.
        status: ``pass``, ``fail``, ``skipped`` or ``error``.
        reason: why it did not pass (one line; empty on pass).
        weights: weight fidelity, or None when not compared.
        outputs: drift per output (empty when outputs were not compared).
        recoverability: task-metric verdict, or None when no metric applies.
        timings: seconds spent per phase (``convert``, ``session``,
            ``inference``, ``metric``, ``total``).
        notes: remarks that do not change the verdict.
        weights_only: judged on its weights alone, because nothing could run the
            artifact (a weights-only format and no model spec); outputs not compared.
        fallbacks: what the route did instead of its normal step, where nothing better
            existed (token ids synthesized for a model without a tokenizer, a candidate's
            weights that could not be read); each is also a note, and ``--strict`` fails
            a route that has any.
        first_divergence: where a failing route's drift begins, ``{"at", "op",
            "max_abs", "floor"}``; None when the route passes or nothing could be matched.
        layer_drift: every matched layer's drift in execution order (``at``, ``op``,
            ``max_abs``, ``floor``, ``exceeded``), for the report's chart.
        env: the deployment environment (``--env NAME=SPEC``) the artifact ran in;
            None for the environment the check runs in.
        speed_vs_source: the artifact's inference time over its source's, both the best
            of a few calls on the same inputs in the same worker (2.0: twice as slow);
            None where either did not run. It informs; no verdict depends on it.
        bytes: the artifact's size on disk (a directory's files together), or None.
        casts: where the route left the checkpoint's own dtype: weights the artifact
            stores in another dtype, outputs its runtime computes in another dtype
            (``bfloat16 -> float32``...), one line each; each is also a note.
    """

    subject: str
    route: list[str]
    status: str
    reason: str = ""
    weights: WeightReport | None = None
    outputs: list[OutputDrift] = field(default_factory=list)
    recoverability: Recoverability | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    weights_only: bool = False
    fallbacks: list[str] = field(default_factory=list)
    first_divergence: dict[str, Any] | None = None
    layer_drift: list[dict[str, Any]] = field(default_factory=list)
    env: str | None = None
    speed_vs_source: float | None = None
    bytes: int | None = None
    casts: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The route as text, ``torch->onnx->torch``."""
        return "->".join(self.route)

    @property
    def id(self) -> str:
        """Subject, route and environment, unique within a report."""
        return f"{self.subject} {self.name}" + (f" [env {self.env}]" if self.env else "")

    def __bool__(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, following the report schema."""
        return {
            "subject": self.subject, "route": list(self.route), "status": self.status,
            "reason": self.reason,
            "weights": None if self.weights is None else self.weights.to_dict(),
            "outputs": [o.to_dict() for o in self.outputs],
            "recoverability": None if self.recoverability is None else self.recoverability.to_dict(),
            "timings": dict(self.timings), "notes": list(self.notes), "weights_only": self.weights_only,
            "fallbacks": list(self.fallbacks),
            "first_divergence": None if self.first_divergence is None else dict(self.first_divergence),
            "layer_drift": [dict(layer) for layer in self.layer_drift],
            "env": self.env,
            "speed_vs_source": self.speed_vs_source, "bytes": self.bytes,
            "casts": list(self.casts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouteResult:
        """Inverse of ``to_dict``."""
        return cls(subject=data["subject"], route=list(data["route"]), status=data["status"],
                   reason=data.get("reason", ""),
                   weights=None if data.get("weights") is None else WeightReport.from_dict(data["weights"]),
                   outputs=[OutputDrift.from_dict(o) for o in data.get("outputs", [])],
                   recoverability=None if data.get("recoverability") is None
                   else Recoverability.from_dict(data["recoverability"]),
                   timings=dict(data.get("timings", {})), notes=list(data.get("notes", [])),
                   weights_only=bool(data.get("weights_only", False)),
                   fallbacks=list(data.get("fallbacks", [])),
                   first_divergence=data.get("first_divergence"),
                   layer_drift=list(data.get("layer_drift") or []), env=data.get("env"),
                   speed_vs_source=data.get("speed_vs_source"), bytes=data.get("bytes"),
                   casts=list(data.get("casts") or []))


@dataclass
class Report:
    """Every route's verdict. Truthy iff no route failed or errored and at
    least one passed (skipped routes neither pass nor fail a report).

    Attributes:
        routes: the route results, in the order they were planned.
        tolerance: the policy they were judged against.
        created: UNIX time when the check finished.
        duration_s: wall time of the whole check.
        environment: Python, platform and framework versions.
    """

    routes: list[RouteResult] = field(default_factory=list)
    tolerance: Tolerance = field(default_factory=Tolerance)
    created: float = field(default_factory=time.time)
    duration_s: float = 0.0
    environment: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return any(r.status == "pass" for r in self.routes) and \
            not any(r.status in ("fail", "error") for r in self.routes)

    def counts(self) -> dict[str, int]:
        """Number of routes per status."""
        return {s: sum(r.status == s for r in self.routes) for s in STATUSES}

    def weights_only(self) -> int:
        """How many passed routes were judged on their weights only."""
        return sum(r.status == "pass" and r.weights_only for r in self.routes)

    def summary_line(self) -> str:
        """``3 pass (2 on weights only), 0 fail, 1 skipped, 0 error``."""
        parts = []
        for status, count in self.counts().items():
            judged = self.weights_only() if status == "pass" else 0
            parts.append(f"{count} {status}" + (f" ({judged} on weights only)" if judged else ""))
        return ", ".join(parts)

    def failures(self) -> list[RouteResult]:
        """Routes that failed or errored."""
        return [r for r in self.routes if r.status in ("fail", "error")]

    def exit_code(self) -> int:
        """0 when the report passed, 1 otherwise."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, following the report schema."""
        return {"schema_version": SCHEMA_VERSION, "created": self.created, "duration_s": self.duration_s,
                "passed": self.passed,
                "summary": {**self.counts(), "weights_only": self.weights_only()},
                "environment": dict(self.environment),
                "tolerance": self.tolerance.to_dict(), "routes": [r.to_dict() for r in self.routes]}

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        from portability.reports.writers import json_text

        return json_text(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Inverse of ``to_dict``.

        Raises:
            ValueError: a schema version this code does not read.
        """
        major = str(data.get("schema_version", "")).split(".")[0]
        if major != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"report schema_version {data.get('schema_version')!r} is not "
                             f"readable by this version (reads {SCHEMA_VERSION})")
        return cls(routes=[RouteResult.from_dict(r) for r in data["routes"]],
                   tolerance=Tolerance.from_dict(data.get("tolerance") or {}),
                   created=data.get("created", 0.0), duration_s=data.get("duration_s", 0.0),
                   environment=dict(data.get("environment", {})))

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Inverse of ``to_json``."""
        return cls.from_dict(json.loads(text))


def environment() -> dict[str, str]:
    """Python, platform and the versions of installed frameworks (without importing them)."""
    from importlib import metadata

    env = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("portability", "numpy", "torch", "onnx", "onnxruntime", "tensorflow-cpu", "tensorflow",
                 "safetensors"):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return env
