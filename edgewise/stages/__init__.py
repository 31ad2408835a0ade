"""Pipeline stages: each takes a model's state, does one job, records it in the run directory, adds to the ledger.

The stage table (edgewise.stages.table) lists them in run order with their recipe sections.
"""
