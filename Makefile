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

# two worker processes of one torch thread each: on a 2-core machine twice as fast as one process of two threads
test: setup-dev
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses 2 --dist loadfile

bench: setup-dev
	$(PY) -m benchmarks

lint: setup-dev
	.venv/bin/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
