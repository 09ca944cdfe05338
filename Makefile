# The course's two commands:  make lab   (environment, model, JupyterLab)   and   make test
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
PYTEST_NB := --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider
LAB_ARGS ?=
# Jupyter refuses to start as root (containers, CI boxes) unless told it is on purpose
ROOT_ARGS := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

.PHONY: help lab env dev-env model test lint unit notebooks exercises exercises-check audit grade check clean-model

help:
	@echo "make lab       create .venv, install the pinned requirements, fetch the model, start JupyterLab"
	@echo "make test      lint + unit tests + every lesson and solution notebook under nbval"
	@echo "make exercises regenerate exercises/ from solutions/"
	@echo "make grade SUBMISSIONS=dir [GRADE_ARGS='--cell-timeout 60']   grade a folder of submitted notebooks"
	@echo "make audit     run every solution and its exercise; report vacuous or broken graders"
	@echo "make check     print the environment check"

env:
	@scripts/ensure_venv.sh requirements.txt

dev-env:
	@scripts/ensure_venv.sh requirements-dev.txt

model: env
	$(PY) -m ftcourse fetch-model

lab: model
	@scripts/lab_settings.sh $(PY)
	$(BIN)/jupyter lab $(ROOT_ARGS) $(LAB_ARGS) lessons/00_setup.ipynb

check: env
	$(PY) -m ftcourse check

lint: dev-env
	$(BIN)/ruff check ftcourse tests bench lessons solutions

# One pytest run, so one summary: unit tests, grader tests, then every lesson notebook under nbval.
# The solutions are not run a second time under nbval: the grader audit in tests/test_exercises.py already
# runs every solution top to bottom (each grader must pass) and every exercise (each grader must fail).
#
# WORKERS pytest processes share the cores, THREADS torch threads each. On 2 cores, two workers with one
# thread each finish the suite well before one worker with two threads: text generation, imports and
# kernel starts hardly use a second thread, and one thread per process keeps them from fighting over
# cores (two processes with two threads each are slower than one). A notebook's cells always stay
# together in one worker (--dist loadscope), and the longest files start first (tests/conftest.py orders
# them; --no-loadscope-reorder keeps that order). WORKERS=1 runs everything in one process.
WORKERS ?= 2
NCPU := $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
THREADS ?= $(shell echo $$(( $(NCPU) / $(WORKERS) > 0 ? $(NCPU) / $(WORKERS) : 1 )))
XDIST := $(if $(filter 1,$(WORKERS)),,-n $(WORKERS) --dist loadscope --no-loadscope-reorder)
test: dev-env
	$(PY) -m ftcourse fetch-model
	$(BIN)/ruff check ftcourse tests bench lessons solutions
	OMP_NUM_THREADS=$(THREADS) TOKENIZERS_PARALLELISM=false $(BIN)/pytest -ra $(XDIST) $(PYTEST_NB) tests lessons

unit: dev-env
	$(BIN)/pytest -ra -p no:cacheprovider -m "not slow" tests

notebooks: dev-env
	$(BIN)/pytest -ra $(PYTEST_NB) lessons solutions

exercises: dev-env
	$(PY) -m ftcourse.classroom.exercises

exercises-check: dev-env
	$(PY) -m ftcourse.classroom.exercises --check

audit: dev-env
	$(PY) -m ftcourse.classroom.exercises --audit

grade: dev-env
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=path/to/folder"; exit 2; }
	$(PY) -m ftcourse grade "$(SUBMISSIONS)" $(GRADE_ARGS)

clean-model:
	rm -rf "$${FTCOURSE_CACHE:-$$HOME/.cache/ftcourse}"
