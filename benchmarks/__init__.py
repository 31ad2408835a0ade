"""The kit's own benchmark suite (`make bench`): figures with units and targets, run from the repository's root.

It is an application of the kit (it imports the zoo, the report, compress and export) and is not
part of the installed package: `python -m benchmarks [TOPIC ...]` from a checkout.
"""
