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

.PHONY: install install-low test test-low test-all lint demo clean-venv gpu-check

install: $(STAMP)

$(STAMP): $(REQS)
	bash tools/install_cpu.sh $(VENV) $(PYTHON)
	touch $(STAMP)

## The low end of the declared ranges (torch 2.1, numpy 1.26, full mmcv 2.1.0 with
## compiled ops, pinned by requirements/constraints-gpu.txt) in .venv-low/: the
## stack of OpenMMLab's prebuilt mmcv CUDA wheels. Compiles mmcv (~20+ min on 2 cores).
VENV_LOW ?= .venv-low
PYTHON_LOW ?= python3.11
install-low: $(VENV_LOW)/.mars_mm-installed

$(VENV_LOW)/.mars_mm-installed: setup.py requirements/runtime.txt \
		requirements/mminstall.txt requirements/constraints-gpu.txt tools/install_low.sh
	bash tools/install_low.sh $(VENV_LOW) $(PYTHON_LOW)
	touch $@

## The suite's non-slow tests on the low-end stack (CI runs it after `make test`).
test-low: install-low
	$(VENV_LOW)/bin/python -m pytest tests -q -m "not slow" $(PYTEST_ARGS)

## benchmarks/gpu_check.py: full size on a GPU, tiny on CPU (docs/en/benchmarks.md)
gpu-check: install
	$(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

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
