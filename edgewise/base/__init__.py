"""The kit's base layer: quantized-layer records, atomic writes, 4-bit packing, progress; no front door.

Every package of the kit may import this layer; it imports nothing of the kit but the board package
(edgewise.board: the error types and sysfs/procfs roots, which deploy bundles ship too), nothing
above it (the CLI, the pipeline, the report, compress, export, runtime, bench or targets), and nothing heavier than
numpy, so the packages built on it stay independent of each other and of the user interface.
"""
