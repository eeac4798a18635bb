# Two commands for a new user: `make run` and `make test`. Both set up .venv first if it is missing.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: setup run test test-fast lint bench bench-gpu bench-scale clean

setup: $(STAMP)

# pip (not uv) so that the machine's local torch/torchvision wheels are used; versions are pinned in requirements.lock.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(PY) run.py

# The fast suite plus the end-to-end runs that fit in a few minutes.
test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# pyflakes, import order and line length (pyproject.toml, [tool.ruff]).
lint: $(STAMP)
	.venv/bin/ruff check src tests run.py

bench: $(STAMP)
	$(PY) -m transferability.bench

bench-gpu: $(STAMP)
	$(PY) -m transferability.bench.gpu

# A generated CelebA-sized release tree -> image cache -> one transfer row; outputs/bench/scale.json.
# Smaller: make bench-scale ARGS="--n 20000"; on a GPU machine: scripts/device_check.sh <out_dir>.
bench-scale: $(STAMP)
	$(PY) -m transferability.bench.scale $(ARGS)

clean:
	rm -rf outputs
