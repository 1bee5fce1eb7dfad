# fgbg: two commands on a fresh machine: `make demo` and `make test`.
# Both install what they need into a local virtual environment (.venv) first; a second call reuses it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the tests also need every heavy backend's code (torch, diffusers, onnxruntime, segment-anything):
# they run it on tiny models built locally, never on downloaded weights
TSTAMP := $(VENV)/.installed-test
DEMO   ?= .fgbg-demo

.PHONY: demo test test-slow bench bench-diffusion install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(TSTAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	@$(BIN)/fgbg sample $(DEMO)/sample --quiet >/dev/null
	@$(BIN)/fgbg run $(DEMO)/sample/driving.mp4 --ref $(DEMO)/sample/person.png \
		-w $(DEMO)/work -o $(DEMO)/out.mp4

test: $(TSTAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-slow: $(TSTAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/bench.py

bench-diffusion: $(TSTAMP)
	$(BIN)/python bench/bench_diffusion.py

clean:
	rm -rf $(DEMO) .fgbg .pytest_cache
