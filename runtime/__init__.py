"""Runtime: the FantastIC4-style 4-bit integer MLP kernel and the emulated accelerator's cost model (numpy only)."""

from edgewise.runtime.emulators import EMULATORS, register_emulator
from edgewise.runtime.kernel import MODES, AccumulatorOverflow, IntegerMLP
from edgewise.runtime.representations import REPRESENTATIONS, decode, encode, matvec, size, smallest

__all__ = ["EMULATORS", "MODES", "REPRESENTATIONS", "AccumulatorOverflow", "IntegerMLP", "decode", "encode", "matvec",
           "register_emulator", "size", "smallest"]
