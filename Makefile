# ioc-edge: two commands.
#   make demo   installs what is missing, builds, serves the bundled footage over
#               RTSP and runs the agent on it, logging detections live.
#   make test   installs what is missing and runs every test (what CI runs).

CARGO ?= cargo
export ORT_DYLIB_PATH := $(CURDIR)/.deps/onnxruntime/libonnxruntime.so.1.31.1
export IOC_FOOTAGE_DIR := $(CURDIR)/.deps/footage

.PHONY: setup build test lint bench demo clean

setup:
	bash deploy/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets --locked

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: build lint
	$(CARGO) test --workspace --locked

bench: setup
	$(CARGO) bench -p ioc-benches --bench pipeline --locked

demo: build
	bash deploy/demo.sh

clean:
	$(CARGO) clean
