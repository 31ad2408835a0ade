from bench.units import binary_bytes, si


def test_si_prefixes():
    assert si(50826) == "50.8 k"
    assert si(1.5e9, "MAC") == "1.5 GMAC"
    assert si(12) == "12"
    assert si(None) == "n/a"


def test_binary_bytes():
    assert binary_bytes(512) == "512 B"
    assert binary_bytes(204800) == "200.0 KiB"
    assert binary_bytes(3 * 1024**3) == "3.0 GiB"
