# make venv | test | demo | bench | app | serve   (see README)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python

.PHONY: venv test demo paper bench

venv: $(VENV)/.installed

# Re-install only when the pins change; the stamp makes `make test` cheap.
# neurokit2 (requirements-bench.txt, bench only) declares pandas<3 but works
# with our pandas 3.1.1, so it goes in without its dependencies.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-bench.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -r requirements-bench.txt
	touch $@

test: venv
	$(PYTHON) -m pytest -q tests

bench: venv
	$(PYTHON) bench.py

# The whole pipeline on the embedded synthetic dataset -> results/demo/REPORT.md
demo: venv
	$(PYTHON) pipeline.py demo

# The study on real CPSC2018: make paper DATA=data/CPSC [CV=1] [RECIPE=ours]
DATA ?= data/CPSC
RECIPE ?= study
paper: venv
	$(PYTHON) pipeline.py paper --data-dir $(DATA) --recipe $(RECIPE) $(if $(CV),--cv)

# The clinical web app on http://localhost:8501: make app [MODEL=models/<run>/best.pt]
.PHONY: app
app: venv
	$(BIN)/streamlit run app.py $(if $(MODEL),-- --model-path $(MODEL))

# The HTTP API and the page on http://127.0.0.1:8000 (docs/serving.md):
# make serve [MODEL=models/<run>/best.pt] [ARGS='--backend onnx --workers 2']
.PHONY: serve
serve: venv
	$(PYTHON) serve.py $(if $(MODEL),--model-path $(MODEL)) $(ARGS)
