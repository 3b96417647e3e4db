# UKNet: `make test` runs every check CI runs; `make demo` runs the main job. Both install what
# they need (apt-get, idempotent) on a fresh Debian 12 machine with Swift 6.3.
SHELL := /bin/bash
SWIFT ?= swift

# Debian packages per job.
TEST_PACKAGES  := valgrind libpcap-dev tshark memcached iproute2 iputils-ping python3
BENCH_PACKAGES := valgrind libdpdk-dev dpdk-dev pkg-config gcc memcached iproute2 python3
DEMO_PACKAGES  := iproute2

.PHONY: all build test unit-tests embedded-check hotpath-check bench demo deps-test deps-bench deps-demo clean

all: build

build:
	$(SWIFT) build

deps-test:
	scripts/install-deps.sh $(TEST_PACKAGES)

deps-bench:
	scripts/install-deps.sh $(BENCH_PACKAGES)

deps-demo:
	scripts/install-deps.sh $(DEMO_PACKAGES)

## Everything CI checks: unit tests, the Embedded build of the core, and the hot-path proof.
test: deps-test unit-tests embedded-check hotpath-check
	@echo "make test: all checks passed"

unit-tests:
	$(SWIFT) build --build-tests
	$(SWIFT) test

## The core modules compiled as Embedded Swift for x86_64-unknown-none-elf (the unikernel target).
embedded-check:
	scripts/embedded-check.sh

## Zero mallocs and zero retain/release per packet in the burst loops (counted, not timed).
hotpath-check: deps-test
	Benchmarks/check-hotpath.sh

## Speed beside its peers: the core vs DPDK's rte_ring/rte_mempool, the KV store vs memcached,
## pktgen TX vs testpmd txonly on net_null, pktgen kv against the store, and through TAPs
## against the store and against memcached.
bench: deps-bench
	Benchmarks/run-netdev-bench.sh
	Benchmarks/run-kv-bench.sh
	Benchmarks/run-pktgen-bench.sh
	Benchmarks/run-tap-kv-bench.sh

## The main job: the KV store on a TAP in a private network namespace, driven by pktgen kv on a
## second TAP across a bridge (in-process over a ring pair where there is no root).
demo: deps-demo
	scripts/demo.sh

clean:
	rm -rf .build .build-* out
