"""Pipeline stages: each takes a model's state, does one job, records it in the run directory and returns rows."""
