"""``--dynamic NAME=AXES`` parsing."""

from __future__ import annotations

import pytest

from portability.core.dynamic_axes import parse_dynamic
from portability.errors import UsageError
from portability.harness.dynamic_check import fixed_dynamic_axes


def test_items_and_mappings_parse_to_sorted_pairs():
    assert parse_dynamic(["image=3, 0,2", "ids=1"]) == (("ids", (1,)), ("image", (0, 2, 3)))
    assert parse_dynamic("image=0,2,3") == (("image", (0, 2, 3)),)
    assert parse_dynamic({"image": [2, 3]}) == (("image", (2, 3)),)
    assert parse_dynamic(None) == () and parse_dynamic([]) == ()


@pytest.mark.parametrize(("items", "message"), [
    (["image"], "expected NAME=AXES"), (["image=a"], "expected NAME=AXES"), (["image=-1"], "expected NAME=AXES"),
    (["image=2,2"], "an axis is named twice"), (["image=2", "image=3"], "more than once"),
    ({"image": [-1]}, "must not be negative"),
])
def test_malformed_declarations_are_usage_errors(items, message):
    with pytest.raises(UsageError, match=message):
        parse_dynamic(items)


def test_an_artifact_that_fixes_a_declared_axis_is_named_with_the_size():
    declared = (("input.1", (0, 2, 3)),)
    # a SavedModel signature names the input input_1; axis 0 dynamic, 2 and 3 fixed
    reasons = fixed_dynamic_axes({"input_1": [None, 3, 16, 24]}, declared, "tf-savedmodel")
    assert reasons == ["the tf-savedmodel artifact fixes axis 2 to 16, axis 3 to 24 of input 'input.1', declared "
                       "dynamic (--dynamic input.1=0,2,3): it cannot take other sizes there"]
    assert fixed_dynamic_axes({"input.1": [None, 3, None, None]}, declared, "onnx") == []
    assert fixed_dynamic_axes(None, declared, "torch") == []
