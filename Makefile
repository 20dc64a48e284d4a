# One-command setup and checks. Every target is idempotent: `.venv/` is reused while
# the requirement files are unchanged (a stamp records their checksum).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
REQS := setup.py requirements/runtime.txt requirements/mminstall.txt \
        requirements/optional.txt requirements/tests.txt requirements/constraints-cpu.txt
STAMP := $(VENV)/.mars_mm-installed
PYTEST_ARGS ?=

.PHONY: install test test-all lint demo clean-venv

install: $(STAMP)

$(STAMP): $(REQS)
	bash tools/install_cpu.sh $(VENV) $(PYTHON)
	touch $(STAMP)

## The README's test command: installs if needed, lints, then runs the suite.
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

demo: install
	bash tools/demo.sh

clean-venv:
	rm -rf $(VENV)
