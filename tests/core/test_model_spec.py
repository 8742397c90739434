"""Model-spec parsing: three forms, clear errors, no framework imported."""

import subprocess
import sys

import pytest

from portability.core.model_spec import ModelSpec, parse_model_spec
from portability.errors import UsageError


def test_fixture_spec():
    spec = parse_model_spec("fixture:bert-tiny")
    assert spec == ModelSpec("fixture", "bert-tiny", text="fixture:bert-tiny")
    assert str(spec) == "fixture:bert-tiny"


def test_hf_spec_needs_a_directory_with_config(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    spec = parse_model_spec(f"hf:{tmp_path}")
    assert (spec.kind, spec.directory) == ("hf", tmp_path)
    with pytest.raises(UsageError, match="is not a directory"):
        parse_model_spec(f"hf:{tmp_path / 'missing'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="has no config.json"):
        parse_model_spec(f"hf:{empty}")


def test_factory_spec():
    spec = parse_model_spec("my_pkg.models:make_model")
    assert (spec.kind, spec.target, spec.factory) == ("factory", "my_pkg.models", "make_model")


@pytest.mark.parametrize("text", ["", "bert", "fixture:", "pkg.mod:", "pkg.mod:make-model",
                                  "1pkg:factory", "pkg..mod:f", "unknown:thing here"])
def test_bad_specs_list_the_forms(text):
    with pytest.raises(UsageError) as err:
        parse_model_spec(text)
    message = str(err.value)
    assert message.startswith(f"model spec {text!r} ")
    if text == "fixture:":
        assert message.endswith("names no fixture (fixture:NAME; list them with `portability fixtures`)")
    else:
        assert message.endswith("is not one of: fixture:NAME, hf:DIR, package.module:factory")
    assert "\n" not in message


def test_parsing_imports_no_framework():
    code = ("import sys; from portability.core.model_spec import parse_model_spec; "
            "parse_model_spec('fixture:mlp'); parse_model_spec('a.b:c'); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'onnx', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
