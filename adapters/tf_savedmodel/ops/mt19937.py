"""numpy's legacy generator (``numpy.random.RandomState``) as TF ops.

ONNX's reference defines a seeded training-mode Dropout by the draws of
``RandomState(seed).uniform(0, 1, shape)``; TF's generators produce other
streams, so the seeded mask is reproduced with MT19937 itself. RandomState
seeds from an integer with MT19937's ``init_genrand`` (checked in the tests
against ``get_state()``), regenerates its 624-word state before the first word,
and builds each double from two tempered words: 27 + 26 bits over 2**53.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

STATE_WORDS = 624
_SHIFT = 397  # each new word mixes in the word this far ahead
_TWIST = 0x9908B0DF
_UPPER, _LOWER = 0x80000000, 0x7FFFFFFF


def seeded_state(seed: int) -> np.ndarray:
    """The 624-word state RandomState(seed) starts from (``init_genrand``).

    Raises:
        ValueError: a seed RandomState refuses (outside [0, 2**32)).
    """
    if not 0 <= seed < 1 << 32:
        raise ValueError(f"seed {seed}: numpy's RandomState takes seeds in [0, 2**32)")
    state = [seed]
    for index in range(1, STATE_WORDS):
        previous = state[-1]
        state.append((1812433253 * (previous ^ (previous >> 30)) + index) & 0xFFFFFFFF)
    return np.array(state, np.uint32)


def _mix(current: tf.Tensor, following: tf.Tensor, ahead: tf.Tensor) -> tf.Tensor:
    """New words from the old words at i, i+1 and the (already regenerated, where due) word at i+397."""
    joined = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(current, _UPPER),
                                   tf.bitwise.bitwise_and(following, _LOWER))
    odd = tf.bitwise.bitwise_and(joined, 1) == 1
    twisted = tf.where(odd, tf.constant(_TWIST, tf.uint32), tf.constant(0, tf.uint32))
    return tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(ahead, tf.bitwise.right_shift(joined, 1)), twisted)


def regenerate(state: tf.Tensor) -> tf.Tensor:
    """The next 624-word state. Word i reads word i+397 (mod 624), already renewed
    for i >= 227, so the words are renewed in runs whose inputs are all ready:
    [0, 227) from old words, [227, 454) from the first run, [454, 623) from the
    second, and the last word, which also reads the renewed word 0."""
    tail = STATE_WORDS - _SHIFT  # 227
    first = _mix(state[:tail], state[1:tail + 1], state[_SHIFT:])
    second = _mix(state[tail:2 * tail], state[tail + 1:2 * tail + 1], first)
    third = _mix(state[2 * tail:-1], state[2 * tail + 1:], second[:STATE_WORDS - 1 - 2 * tail])
    last = _mix(state[-1:], first[:1], second[STATE_WORDS - 1 - 2 * tail:][:1])
    return tf.concat([first, second, third, last], axis=0)


def temper(words: tf.Tensor) -> tf.Tensor:
    """MT19937's output transform of state words."""
    words = tf.bitwise.bitwise_xor(words, tf.bitwise.right_shift(words, 11))
    words = tf.bitwise.bitwise_xor(words, tf.bitwise.bitwise_and(tf.bitwise.left_shift(words, 7), 0x9D2C5680))
    words = tf.bitwise.bitwise_xor(words, tf.bitwise.bitwise_and(tf.bitwise.left_shift(words, 15), 0xEFC60000))
    return tf.bitwise.bitwise_xor(words, tf.bitwise.right_shift(words, 18))


def _words(seed: int, count: tf.Tensor) -> tf.Tensor:
    """The first ``count`` (a scalar int tensor) output words of RandomState(seed)."""
    # At least one block: an empty TensorArray cannot be concatenated.
    blocks = tf.maximum(tf.cast((count + STATE_WORDS - 1) // STATE_WORDS, tf.int32), 1)
    out = tf.TensorArray(tf.uint32, size=blocks, element_shape=[STATE_WORDS])

    def step(index, state, out):
        state = regenerate(state)
        return index + 1, state, out.write(index, temper(state))

    _, _, out = tf.while_loop(lambda index, state, out: index < blocks, step,
                              (tf.constant(0, blocks.dtype), tf.constant(seeded_state(seed)), out))
    return out.concat()[:count]


def uniform(seed: int, shape: tf.Tensor) -> tf.Tensor:
    """float64 draws equal to ``numpy.random.RandomState(seed).uniform(0, 1, shape)``
    (``shape`` may be known only when the graph runs)."""
    count = tf.reduce_prod(tf.cast(shape, tf.int64))
    pairs = tf.reshape(tf.cast(_words(seed, 2 * count), tf.int64), [-1, 2])
    high, low = tf.bitwise.right_shift(pairs[:, 0], 5), tf.bitwise.right_shift(pairs[:, 1], 6)
    draws = (tf.cast(high, tf.float64) * 67108864.0 + tf.cast(low, tf.float64)) / 9007199254740992.0
    return tf.reshape(draws, shape)
