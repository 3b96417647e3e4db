# UKNet: `make test` runs every check CI runs; `make demo` runs the main job. Both install what
# they need (apt-get, idempotent) on a fresh Debian 12 machine with Swift 6.3.
SHELL := /bin/bash
SWIFT ?= swift

# The one list of Debian packages that building the Swift package needs (headers and libraries
# of its C and system-library targets). Every target that builds depends on deps-build, so any
# of them can be the first command on a fresh machine; scripts/check-build-deps.py (in make test)
# fails when a target, a Package.swift provider, a linked library or an included header is not
# covered. A new backend adds its -dev package here, not to a job's list.
BUILD_PACKAGES := libpcap-dev pkg-config libdpdk-dev liblwip-dev

# Debian packages per job, beyond the build's.
TEST_PACKAGES  := valgrind tshark memcached iproute2 iputils-ping python3 dpdk-dev qemu-system-x86
BENCH_PACKAGES := valgrind libdpdk-dev dpdk-dev gcc memcached iproute2 python3 qemu-system-x86
DEMO_PACKAGES  := iproute2 python3 qemu-system-x86
# make compare (the paper's Table 4 and fig. 19): the vhost switch, memcached, namespaces, QEMU, the plot.
COMPARE_PACKAGES := dpdk-dev memcached iproute2 python3 qemu-system-x86 gnuplot-nox
# Booting a unikernel image: QEMU (its qemu-system-data brings qboot.rom, the fast firmware for -M pc).
KVM_PACKAGES   := qemu-system-x86

# The unikernel app `make image` / `make run-kvm` build and boot: a folder Unikernel/Apps/$(APP).
# run-kvm also takes MACHINE (microvm|pc), FIRMWARE (qboot|seabios, for pc), ACCEL (auto|kvm|tcg),
# CPU, CMDLINE, MEM, TIMEOUT, DEBUG_EXIT and QEMU_ARGS from the command line (scripts/run-kvm.sh).
APP ?= hello

.PHONY: all build test compare-quick unit-tests virtio-asan asan tsan soak soak-quick embedded-check unikernel-check hotpath-check fuzz fuzz-quick build-deps-check image run-kvm bench compare demo deps-build deps-test deps-bench deps-demo deps-kvm deps-compare clean

all: build

build: deps-build
	$(SWIFT) build

deps-build:
	scripts/install-deps.sh $(BUILD_PACKAGES)

deps-test: deps-build
	scripts/install-deps.sh $(TEST_PACKAGES)

deps-bench: deps-build
	scripts/install-deps.sh $(BENCH_PACKAGES)

deps-demo: deps-build
	scripts/install-deps.sh $(DEMO_PACKAGES)

deps-kvm: deps-build
	scripts/install-deps.sh $(KVM_PACKAGES)

deps-compare: deps-build
	scripts/install-deps.sh $(COMPARE_PACKAGES)

## Everything CI checks: unit tests, the Embedded build of the core, the hot-path proof, and the
## paper's comparison in its short form (every path of Table 4 and fig. 19 run and checked), the
## whole suite again under AddressSanitizer, a 10-s pass of every fuzz target and the 30-s soak.
test: deps-test build-deps-check unit-tests asan embedded-check unikernel-check hotpath-check compare-quick fuzz-quick soak-quick
	@echo "make test: all checks passed"

compare-quick: deps-build deps-compare
	QUICK=1 OUT="$(OUT)" Benchmarks/compare/compare.sh

unit-tests: deps-test
	$(SWIFT) build --build-tests
	$(SWIFT) test

## The virtio ring logic's tests (a device that lies in the used ring among them) again under the
## address sanitizer: no out-of-bounds access on any path. Own build folder (.build-asan). Leak
## reports are off: the test runners' own runtime allocations show up there; lost buffers are
## what the tests check themselves (every pool back to full).
virtio-asan: deps-test
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --sanitize=address --scratch-path .build-asan --skip-build --filter VirtioNetTests

## The core modules compiled as Embedded Swift for x86_64-unknown-none-elf (the unikernel target),
## their undefined symbols checked against a committed list, linked with the freestanding runtime;
## --self-test: the checks must catch a new runtime need, a stale list entry, a missing runtime.
embedded-check: deps-build
	scripts/embedded-check.sh --self-test

## The unikernel's boot and platform layer: the hello image built, its size held under 256 KB,
## booted on microvm and on pc (qboot) with KVM when /dev/kvm works (and under TCG), its console,
## exit statuses, clock and timeout checked; boot times printed.
unikernel-check: deps-test
	scripts/unikernel-check.sh

## A bootable image of the app Unikernel/Apps/$(APP) (Embedded Swift, PVH entry for qemu -kernel).
image: deps-build
	scripts/build-image.sh $(APP)

## The image booted under QEMU (KVM when /dev/kvm works, else TCG), console on stdout; exits
## with the app's status.
run-kvm: deps-kvm image
	MACHINE="$(MACHINE)" FIRMWARE="$(FIRMWARE)" ACCEL="$(ACCEL)" CPU="$(CPU)" CMDLINE="$(CMDLINE)" \
	  MEM="$(MEM)" TIMEOUT="$(TIMEOUT)" DEBUG_EXIT="$(DEBUG_EXIT)" QEMU_ARGS="$(QEMU_ARGS)" NET="$(NET)" \
	  scripts/run-kvm.sh .build-image/$(APP)/$(APP).elf

## Every target that builds installs the build's packages first; every library and header the
## C targets use comes from them (with a negative control: the check must fail without them).
build-deps-check: deps-build
	scripts/check-build-deps.py --self-test

## Zero mallocs and zero retain/release per packet in the burst loops (counted, not timed).
hotpath-check: deps-test
	Benchmarks/check-hotpath.sh

## The store and pktgen kv under injected faults (drop, duplicate, corrupt, reorder, stall) through
## a vhost-user switch (testpmd) killed and restarted twice mid-run: both reconnect, losses are
## reported, every buffer comes back, resident memory stays flat (scripts/soak.sh).
## soak: SOAK_SECONDS (600); soak-quick: 30 s.
SOAK_SECONDS ?= 600
soak: deps-test
	SOAK_SECONDS="$(SOAK_SECONDS)" scripts/soak.sh

soak-quick: deps-test
	SOAK_SECONDS=30 scripts/soak.sh

## The whole test suite under AddressSanitizer (every target and the programs the tests run, built
## into .build-asan, which virtio-asan shares; in make test, ~4 min here), and under ThreadSanitizer
## (.build-tsan; ~6.5 min, not in make test: BENCHMARKS.md, "Sanitizers"). Leak reports off under
## ASan for the reason virtio-asan gives.
asan: deps-test
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --sanitize=address --scratch-path .build-asan --skip-build

tsan: deps-test
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --sanitize=thread --scratch-path .build-tsan --skip-build

## libFuzzer targets (Fuzz/, -sanitize=fuzzer,address): the wire views and host stack, the KV
## server's receive path, the memcached parser and engine, VirtioNet's used ring under a fuzzed
## device; each for FUZZ_SECONDS from the seeds in Fuzz/Corpus/. Executions and crashes per
## target; fails on any crash, its input kept (scripts/fuzz.sh). fuzz-quick: 10 s each.
FUZZ_SECONDS ?= 60
fuzz: deps-build
	FUZZ_SECONDS="$(FUZZ_SECONDS)" scripts/fuzz.sh

fuzz-quick: deps-build
	FUZZ_SECONDS=10 scripts/fuzz.sh

## Speed beside its peers: the core vs DPDK's rte_ring/rte_mempool, the KV store vs memcached,
## pktgen TX vs testpmd txonly on net_null, pktgen kv against the store, and through TAPs
## against the store and against memcached; VirtioNet over vhost-user beside DPDK's virtio_user;
## the KV store unikernel's size, boot times and smallest memory.
bench: deps-bench
	Benchmarks/run-netdev-bench.sh
	Benchmarks/run-kv-bench.sh
	Benchmarks/run-pktgen-bench.sh
	Benchmarks/run-tap-kv-bench.sh
	Benchmarks/run-vhost-bench.sh
	Benchmarks/run-dpdk-bench.sh
	Benchmarks/run-unikernel-bench.sh
	Benchmarks/run-unikernel-vhost-bench.sh
	Benchmarks/run-stack-cost.sh

## The paper's Table 4 (the KV store over Linux single/batch, DPDK, lwIP, netdev and the unikernel, with
## memcached beside them) and fig. 19 (TX Mpps and Gbit/s vs frame size over vhost-user), measured here,
## the paper's figures beside ours: compare-results/ (OUT=DIR), table4.md and fig19.png among them.
## QUICK=1: three frame sizes, short runs, one round (~1.5 min).
compare: deps-build deps-compare
	QUICK="$(QUICK)" OUT="$(OUT)" Benchmarks/compare/compare.sh

## The main job: the KV store unikernel in QEMU/KVM on a TAP in a private network namespace,
## driven by pktgen kv on a second TAP across a bridge (HOSTED=1: the store as a Linux process;
## in-process over a ring pair where there is no root).
demo: deps-demo
	scripts/demo.sh

clean:
	rm -rf .build .build-* out
