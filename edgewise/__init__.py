"""Edgewise: compress neural networks with explainability, export them for edge hardware, measure the cost.

This package is the front door (the `edgewise` command, recipes, the pipeline and the zoo) and
the kit's base layer (errors, atomic writes) that every other package may import; it imports
nothing heavy at import time.
"""

from importlib import metadata

try:
    __version__ = metadata.version("edgewise")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
