# ioc-edge: two commands.
#   make demo   installs what is missing, builds, serves the bundled footage over
#               RTSP and runs the agent on it, logging detections live.
#   make test   installs what is missing and runs every test (what CI runs).
#   make eval   the agent's quality on every scenario clip (tests/scenarios/README.md).
#   make bench  the benchmarks (benches/README.md).
#   make packages  Debian packages of the agent and the collector, amd64 and arm64
#               (target/packages/; arm64 cross-compiled, deploy/cross-setup.sh).

CARGO ?= cargo
export ORT_DYLIB_PATH := $(CURDIR)/.deps/onnxruntime/libonnxruntime.so.1.31.1
export IOC_FOOTAGE_DIR := $(CURDIR)/.deps/footage

ARM64 := aarch64-unknown-linux-gnu

.PHONY: setup build cross test lint bench eval demo packages clean

setup:
	bash deploy/setup.sh

build: setup
	$(CARGO) build --workspace --all-targets --locked

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The arm64 binaries the package test installs and runs under qemu-user. If the cross
# tool chain cannot be installed (no network to Debian or to Rust's distribution server),
# the test says so and skips the arm64 part; a cross build that fails to compile fails here.
cross: setup
	@mkdir -p target
	@if bash deploy/cross-setup.sh; then \
	  rm -f target/cross-unavailable; \
	  bash deploy/cross.sh $(CARGO) build --locked --target $(ARM64) -p ioc-agent -p ioc-collector --bins; \
	else \
	  echo "deploy/cross-setup.sh failed: the arm64 package test will be skipped" | tee target/cross-unavailable >&2; \
	fi

test: build lint cross
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
	bash deploy/cross-setup.sh
	$(CARGO) build --release --locked -p ioc-agent -p ioc-collector --bins
	bash deploy/cross.sh $(CARGO) build --release --locked --target $(ARM64) -p ioc-agent -p ioc-collector --bins
	ARCH=amd64 bash deploy/package.sh target/release target/packages
	ARCH=arm64 bash deploy/package.sh target/$(ARM64)/release target/packages

# Only the three binaries the demo runs (not every test and benchmark).
demo: setup
	$(CARGO) build --locked -p ioc-agent -p ioc-collector -p ioc-rtsp-server --bins
	bash deploy/demo.sh

clean:
	$(CARGO) clean
