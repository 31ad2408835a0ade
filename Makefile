# make demo: set up and run the default recipe.  make test: set up and run every test.
PY := .venv/bin/python
export PYTHONHASHSEED := 0

.PHONY: demo test bench lint setup setup-dev clean

setup:
	@tools/venv.sh

setup-dev:
	@tools/venv.sh dev,ray
	@tools/chromium.sh

demo: setup
	.venv/bin/edgewise run

test: setup-dev
	$(PY) -m pytest -q

bench: setup-dev
	$(PY) -m benchmarks

lint: setup-dev
	.venv/bin/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
