"""Human-readable numbers with units, shared by every report table."""

from __future__ import annotations


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """Format `value` with an SI prefix (k, M, G, T), e.g. si(50826) -> '50.8 k'; None -> 'n/a'."""
    if value is None:
        return "n/a"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"),
                           (1e-9, "n")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}".rstrip()
    return f"{value / 1e-12:.{digits}g} p{unit}".rstrip() if value else f"0 {unit}".rstrip()


def binary_bytes(value: int | None) -> str:
    """Format a byte count with binary prefixes, e.g. 204800 -> '200.0 KiB'; None -> 'n/a'."""
    if value is None:
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    """A time with a readable unit, e.g. 4.5e-08 -> '45 ns', 1.76e-05 -> '17.6 us', 0.0123 -> '12.3 ms'."""
    if seconds is None:
        return "n/a"
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if abs(seconds) >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"
