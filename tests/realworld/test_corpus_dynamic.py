"""MTCNN's P-Net is fully convolutional: exported with its image axes dynamic, the ONNX
graph and the SavedModel run at two image sizes and match torch on both."""

from __future__ import annotations

import numpy as np
import pytest

from portability import api

from . import corpus

pytestmark = pytest.mark.realworld


@pytest.mark.slow
def test_pnet_with_dynamic_image_axes_runs_two_sizes_in_every_runtime(tmp_path):
    try:
        path = corpus.fetch("mtcnn-pnet")
    except corpus.FetchError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(5)
    sizes = {"small.npz": (2, 3, 48, 64), "large.npz": (1, 3, 73, 97)}  # odd sizes: ceil-mode pooling rounds up
    for name, shape in sizes.items():
        np.savez(tmp_path / name, x=rng.uniform(-1, 1, shape).astype(np.float32))
    report = api.check(path, model=corpus.BY_NAME["mtcnn-pnet"].factory, dynamic=["x=0,2,3"],
                       inputs=[tmp_path / n for n in sizes], routes="torch->onnx,torch->tf-savedmodel", workers=0)
    assert [r.status for r in report.routes] == ["pass", "pass"], [r.reason for r in report.routes]
    for route in report.routes:
        judged = {(o.inputs, o.name): o.shape for o in route.outputs}
        assert len(judged) == 4  # box offsets and face probability, on each file
        assert judged[(str(tmp_path / "large.npz"), "output_1")][2:] == [32, 44]
