# One-command setup and checks. Every target is idempotent: `.venv/` is reused while
# the requirement files are unchanged (a stamp records their checksum).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
REQS := setup.py requirements/runtime.txt requirements/mminstall.txt \
        requirements/optional.txt requirements/tests.txt requirements/constraints-cpu.txt
STAMP := $(VENV)/.mars_mm-installed
PYTEST_ARGS ?=
# `make demo`: the planted pipeline (configs/pipelines/planted_demo.py), resumable;
# DEMO_ARGS are passed to tools/mars/run_pipeline.py (e.g. --work-dir, --verbose).
# QUICK=1 is a smoke run of the plumbing on 24 images (numbers meaningless).
DEMO_ARGS ?=
ifeq ($(QUICK),1)
DEMO_ARGS += --work-dir work_dirs/demo_quick --cfg-options \
	dataset.generate.num_train=24 dataset.generate.num_val=8 \
	cam_train.schedule.max_epochs=2 seg_baseline.schedule.max_iters=10 \
	seg_mars.schedule.max_iters=10
endif

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
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) tools/mars/run_pipeline.py \
		configs/pipelines/planted_demo.py $(DEMO_ARGS)

clean-venv:
	rm -rf $(VENV)
