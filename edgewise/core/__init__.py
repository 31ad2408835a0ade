"""The middle layer below the front door: model-version ledgers, run directories, model files, the console and the
environment record. It imports the base layer and the libraries (compress for model files), never the front door
(the CLI, commands, pipeline, recipes, stages, report or zoo)."""
