"""``--env NAME=SPEC`` parsing: the three kinds of spec and every malformed one."""

from __future__ import annotations

import sys

import pytest

from portability.envs.spec import parse_env, parse_envs
from portability.errors import UsageError


def test_requirements_split_on_commas_but_keep_specifier_sets():
    spec = parse_env("ort116=onnxruntime==1.16.3,numpy>=1.26,<2")
    assert (spec.name, spec.kind) == ("ort116", "requirements")
    assert spec.requirements == ("onnxruntime==1.16.3", "numpy>=1.26,<2")
    assert spec.text == "onnxruntime==1.16.3,numpy>=1.26,<2"


def test_requirements_file_lines_without_comments(tmp_path):
    path = tmp_path / "requirements-prod.txt"
    path.write_text("# production\nonnxruntime==1.20.1\n\nnumpy<2  # pinned for ORT\n")
    spec = parse_env(f"prod=@{path}")
    assert (spec.kind, spec.requirements, spec.source) == ("file", ("onnxruntime==1.20.1", "numpy<2"), str(path))


def test_an_existing_interpreter():
    spec = parse_env(f"edge=python:{sys.executable}")
    assert (spec.kind, spec.source, spec.requirements) == ("python", sys.executable, ())


@pytest.mark.parametrize("text, message", [
    ("ort116", "expected NAME=SPEC"),
    ("=onnxruntime", "expected NAME=SPEC"),
    ("ort=", "expected NAME=SPEC"),
    ("main=onnxruntime", "(and not 'main'"),
    ("a b=onnxruntime", "the name 'a b' must be"),
    ("ort=onnxruntime==1.16.3,,numpy", "'' is not a requirement specifier"),
    ("ort=onnxruntime==1.16.3,$numpy", "'$numpy' is not a requirement specifier"),
    ("edge=python:/no/such/python", "no interpreter at /no/such/python"),
    ("prod=@/no/such/requirements.txt", "cannot read the requirements file /no/such/requirements.txt"),
])
def test_malformed_specs_are_one_line_usage_errors(text, message):
    with pytest.raises(UsageError) as info:
        parse_env(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_an_empty_requirements_file(tmp_path):
    (tmp_path / "r.txt").write_text("# nothing\n")
    with pytest.raises(UsageError, match="lists no requirements"):
        parse_env(f"prod=@{tmp_path / 'r.txt'}")


def test_names_must_be_distinct():
    with pytest.raises(UsageError, match="the name 'a' is given twice"):
        parse_envs(["a=onnxruntime", "b=onnxruntime", "a=tensorflow-cpu"])
