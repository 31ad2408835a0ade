"""Recipes shipped with the kit; default.yaml is what `edgewise run` does without arguments."""
