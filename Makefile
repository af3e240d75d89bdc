# make venv | test | demo | bench   (see README)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python

.PHONY: venv test demo bench clean-demo

venv: $(VENV)/.installed

# Re-install only when the pins change; the stamp makes `make test` cheap.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	touch $@

test: venv
	$(PYTHON) -m pytest -q tests

bench: venv
	$(PYTHON) bench.py

demo: venv
	$(PYTHON) synthetic.py --out data/SYNTH --n 1000 --seed 0
	$(PYTHON) preprocess.py --data-dir data/SYNTH
	$(PYTHON) statistic.py --data-dir data/SYNTH
	$(PYTHON) visualize.py --record-paths 'data/SYNTH/A000[1-9].hea' --out results/demo/plots
