"""The kit's own benchmarks, one module per topic, each with `run() -> list[Figure]`; `make bench` runs them."""
