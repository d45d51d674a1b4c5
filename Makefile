# Two commands: `make run` and `make test`. Both create .venv and install what is needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.yaml
MEDIAPIPE_VERSION := 1.2.2

.PHONY: setup run test measure lint format bench clean arm64-check

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,bench,dev]'
	# MediaPipe is the reference in the detector parity test only. Its wheel declares
	# opencv-contrib-python, which clashes with the headless cv2 we use; its face
	# detector needs none of it, so install it without deps.
	$(BIN)/pip install -q --no-deps mediapipe==$(MEDIAPIPE_VERSION)
	touch $(STAMP)

run: setup
	$(BIN)/edge-daemon run -c $(CONFIG)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest --junitxml=.test-results.xml

# Minutes-long checks: the soak and the paced run of the real daemon (numbers in the
# JUnit report), int8 results on an emulated CPU without VNNI; CI runs this after `make test`.
measure: setup
	$(BIN)/python -m pytest -m measure --junitxml=.measure-results.xml

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/edge-bench pipeline --source $${EDGE_DATA_DIR:-../shared/data}/videos/pyfeat__single_face.mp4 --json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# The daemon on linux/aarch64 under qemu-user emulation (root; about 30 minutes the first
# time, the arm64 root is then cached): scripts/arm64-check.sh. CI runs it after measure.
arm64-check: setup
	bash scripts/arm64-check.sh
