"""Runtime: the FantastIC4-style 4-bit integer MLP kernel and the emulated accelerator's cost model."""
