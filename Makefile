# The two commands of the README:
#   make demo   - the seed, end to end, on a local control plane (DEMO_FLAGS=--keep keeps it running)
#   make test   - installs and builds everything it needs, then runs all tests
SHELL := /bin/bash
LOCKSTEP_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lockstep
export LOCKSTEP_CACHE
export CARGO_TARGET_DIR ?= $(LOCKSTEP_CACHE)/target
export LOCKSTEP_COMPONENTS_DIR ?= $(LOCKSTEP_CACHE)/components
WASM_TARGET_DIR := $(LOCKSTEP_CACHE)/target-wasm
CARGO_TEST_FLAGS ?=

.PHONY: test demo toolchain components tools build bench bench-scale

test: toolchain components tools
	@echo "==> cargo test (guest crates' pure logic, natively)"
	cargo test --manifest-path providers/Cargo.toml --workspace --target-dir $(LOCKSTEP_CACHE)/target-guest-native
	@echo "==> cargo test (host crates, e2e against the local control plane)"
	cargo test --workspace --no-fail-fast $(CARGO_TEST_FLAGS)

demo: toolchain components tools
	@echo "==> building lockstep and the demo driver"
	cargo build -p lockstep -p lockstep-demo
	$(CARGO_TARGET_DIR)/debug/lockstep-demo --lockstep $(CARGO_TARGET_DIR)/debug/lockstep $(DEMO_FLAGS)

toolchain:
	@rustup target list --installed | grep -qx wasm32-wasip2 || { echo "==> rustup target add wasm32-wasip2"; rustup target add wasm32-wasip2; }

# Guest components: built once, in their own target directory, never from inside tests.
components: toolchain
	@echo "==> building plugin components (wasm32-wasip2)"
	@mkdir -p $(LOCKSTEP_COMPONENTS_DIR)
	cargo build --manifest-path providers/Cargo.toml --workspace --target wasm32-wasip2 --profile component --target-dir $(WASM_TARGET_DIR)
	@if [ -f templates/wasm/Cargo.toml ]; then cargo build --manifest-path templates/wasm/Cargo.toml --workspace --target wasm32-wasip2 --profile component --target-dir $(WASM_TARGET_DIR); fi
	@cp -u $(WASM_TARGET_DIR)/wasm32-wasip2/component/*.wasm $(LOCKSTEP_COMPONENTS_DIR)/
	@ls $(LOCKSTEP_COMPONENTS_DIR)

# Control-plane binaries (kube-apiserver, etcd, helm), the template oracle and moto, cached by version.
tools:
	@if [ -x tests/cluster/install.sh ]; then tests/cluster/install.sh; fi
	@templates/oracle/build.sh >/dev/null
	@tests/support/moto/install.sh

build: components
	cargo build --release -p lockstep

bench: components
	cargo bench --workspace

# Scale benchmarks (issue 9; BENCHMARKS.md): fresh control plane per run, `lockstep run` as a
# process. BENCH_ARGS e.g. `--scenario 1 --n 1000,5000 --runs 3`; `--quick` for a smoke.
bench-scale: components tools
	cargo build --release -p lockstep -p lockstep-bench
	LOCKSTEP_ETCD_QUOTA_BYTES=$${LOCKSTEP_ETCD_QUOTA_BYTES:-4294967296} $(CARGO_TARGET_DIR)/release/lockstep-bench --out $(CARGO_TARGET_DIR)/bench-scale.md $(BENCH_ARGS)
