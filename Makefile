# ioc-edge: two commands.
#   make demo   installs what is missing, builds, serves the bundled footage over
#               RTSP and runs the agent on it, logging detections live.
#   make test   installs what is missing and runs every test (what CI runs).
#   make eval   the agent's quality on every scenario clip (tests/scenarios/README.md).
#   make bench  the benchmarks (benches/README.md).
#   make packages  Debian packages of the agent and the collector (target/packages/).

CARGO ?= cargo
export ORT_DYLIB_PATH := $(CURDIR)/.deps/onnxruntime/libonnxruntime.so.1.31.1
export IOC_FOOTAGE_DIR := $(CURDIR)/.deps/footage

.PHONY: setup build test lint bench eval demo packages clean

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
	bash deploy/bench-setup.sh
	$(CARGO) build --release --locked -p ioc-agent -p ioc-rtsp-server --bins
	$(CARGO) bench -p ioc-benches --bench pipeline --locked
	$(CARGO) bench -p ioc-benches --bench cameras --locked

# The whole scenario library, at 5 and 10 detection fps, idle and with a CPU hog (2 threads).
eval: setup
	$(CARGO) build --release --locked -p ioc-eval
	./target/release/ioc-eval run tests/scenarios --fps 5,10 --load 0,2 --json target/eval.json

packages: setup
	$(CARGO) build --release --locked -p ioc-agent -p ioc-collector --bins
	bash deploy/package.sh target/release target/packages

demo: build
	bash deploy/demo.sh

clean:
	$(CARGO) clean
