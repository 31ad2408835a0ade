"""Human-readable numbers with units, shared by every report table."""

from __future__ import annotations


def si(value: float | None, unit: str = "", digits: int = 3) -> str:
    """Format `value` with an SI prefix (k, M, G, T), e.g. si(50826) -> '50.8 k'; None -> 'n/a'."""
    if value is None:
        return "n/a"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}".rstrip()
    return f"{value:.{digits}g} {unit}".rstrip()


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
