import numpy as np

from edgewise.base.nibbles import pack_nibbles, unpack_nibbles


def test_first_value_in_the_low_nibble_and_odd_counts_padded():
    assert pack_nibbles(np.array([1, 2, 15])) == bytes([0x21, 0x0F])


def test_round_trip_unsigned_and_signed():
    codes = np.random.default_rng(0).integers(0, 16, 101)
    np.testing.assert_array_equal(unpack_nibbles(pack_nibbles(codes), codes.size), codes)
    signed = np.random.default_rng(1).integers(-8, 8, 64)
    np.testing.assert_array_equal(unpack_nibbles(pack_nibbles(signed & 0x0F), signed.size, signed=True), signed)
