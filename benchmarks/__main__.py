"""`python -m benchmarks [TOPIC ...]`: run the kit's own benchmarks (make bench)."""

from benchmarks.suite import main

main()
