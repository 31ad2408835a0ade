from edgewise.report.units import binary_bytes, si


def test_si_prefixes():
    assert si(50826) == "50.8 k"
    assert si(1.5e9, "MAC") == "1.5 GMAC"
    assert si(12) == "12"
    assert si(None) == "n/a"


def test_binary_bytes():
    assert binary_bytes(512) == "512 B"
    assert binary_bytes(204800) == "200.0 KiB"
    assert binary_bytes(3 * 1024**3) == "3.0 GiB"


def test_small_values_and_durations():
    from edgewise.report.units import duration

    assert si(2.794e-09, "J") == "2.79 nJ" and si(0.1005e-6, "J") == "100 nJ" and si(0, "J") == "0 J"
    assert duration(4.5e-08) == "45 ns" and duration(1.76e-05) == "17.6 us" and duration(0.0123) == "12.3 ms"
    assert duration(None) == "n/a"
