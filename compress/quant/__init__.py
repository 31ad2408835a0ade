"""4-bit (2 to 8 bit) weight quantization: uniform round-to-nearest, ECQ and ECQx, and their training."""
