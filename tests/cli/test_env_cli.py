"""``--env``, ``--target-env``, ``--executor`` and ``--device`` on the command line: bad values
are one-line errors with exit 2, before anything is built or run."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("args, message", [
    (["--env", "ort116"], "error: --env 'ort116': expected NAME=SPEC, e.g. ort116=onnxruntime==1.16.3,numpy<2"),
    (["--env", "a=onnxruntime", "--env", "a=numpy"], "error: --env: the name 'a' is given twice"),
    (["--env", "edge=python:/no/python"], "error: --env 'edge=python:/no/python': no interpreter at /no/python"),
    (["--target-env", "prod"], "error: --target-env prod: no --env of that name (given: none)"),
    (["--executor", "dask"], "error: --executor 'dask': choose one of local, ray"),
    (["--device", "cuda"], "error: --device cuda places jobs on nodes with a GPU: it needs --executor ray"),
])
def test_bad_environment_options_exit_2_with_one_line(cli, args, message):
    result = cli("check", "--fixture", "mlp", "--formats", "torch,safetensors", *args)
    assert result.code == 2
    assert result.err == message + "\n"


def test_compare_takes_env_and_the_plugin_gets_every_new_option(cli):
    assert "--env" in cli("compare", "--help").out
    from portability.cli.options import CHECK_OPTIONS

    assert {"env", "opset", "target-env", "executor", "device"} <= {o.name for o in CHECK_OPTIONS}
