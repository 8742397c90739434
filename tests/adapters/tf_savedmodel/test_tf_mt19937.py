"""numpy's legacy Mersenne Twister in TF ops: the same state and the same doubles as RandomState."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from portability.adapters.tf_savedmodel.ops import mt19937

SEEDS = [0, 1, 5489, 123456789, 2**32 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_seeding_gives_randomstates_initial_state(seed):
    name, words, position = np.random.RandomState(seed).get_state()[:3]
    assert name == "MT19937" and position == mt19937.STATE_WORDS  # regenerated before the first word
    np.testing.assert_array_equal(mt19937.seeded_state(seed), words)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seeds_randomstate_refuses_are_refused(seed):
    with pytest.raises(ValueError):
        np.random.RandomState(seed)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32\)"):
        mt19937.seeded_state(seed)


# 624 words make one block and each double takes two words: 312 draws per block.
@pytest.mark.parametrize("shape", [(1,), (311,), (312,), (313,), (624,), (3, 4, 5), (1000, 3), (0, 4)])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_uniform_draws_equal_numpys_bit_for_bit(seed, shape):
    got = mt19937.uniform(seed, tf.constant(shape)).numpy()
    want = np.random.RandomState(seed).uniform(0, 1, shape)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_the_draw_count_stays_dynamic_in_a_traced_function():
    draw = tf.function(lambda x: mt19937.uniform(42, tf.shape(x)),
                       input_signature=[tf.TensorSpec([None, None], tf.float32)])
    for shape in [(2, 3), (40, 50)]:
        np.testing.assert_array_equal(draw(tf.zeros(shape)).numpy(), np.random.RandomState(42).uniform(0, 1, shape))
    assert len(draw._list_all_concrete_functions()) == 1  # one trace served both sizes
