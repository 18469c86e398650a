# unclip: the two commands a new user types are `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-slow lint demo bench-env

install: $(STAMP)

# torch/torchvision are pinned to the builds this machine serves from disk; everything else from setup.cfg.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# pytest exits 5 when it collects no tests: that is a failure, said out loud.
test: install
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

test-slow: install
	$(PY) -m pytest -m slow

# The main job: data, CLIP, embeddings, prior, decoder, upsampler, samples, evaluation on shapes.
# Reruns reuse what is built; Ctrl-C saves a checkpoint and the next run resumes.
# ARGS: more options, e.g. ARGS="--fresh" (start over, data kept) or ARGS="--minutes 30".
PRESET ?= shapes_quick
ARGS ?=
demo: install
	$(PY) -m unclip.demo --preset $(PRESET) $(ARGS)

lint: install
	$(PY) -m ruff check .

# Peer implementations (dalle2-pytorch, diffusers) for the side-by-side benchmarks, in their own
# venv because dalle2-pytorch pins open_clip_torch<3.
BENCH_VENV ?= .venv-bench
bench-env: $(BENCH_VENV)/.installed

$(BENCH_VENV)/.installed: benchmarks/peers/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r benchmarks/peers/requirements.txt
	touch $@
