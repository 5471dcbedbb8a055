# sluice — the one entry point.
#   make            build sluiced, sluicectl, sluice-sink
#   make deps       install the Debian packages the build, tests and demo need
#   make demo       run a sample workload in a private network namespace
#   make test       unit tests, fuzz smoke runs, end-to-end tests
#   make test SAN=1 the same, built with ASan + UBSan
#   make fuzz       run every fuzz target longer (FUZZ_SECONDS=60 each)
#   make bench      sluice vs Postfix vs the ceiling (SCENARIO=name for one)
#   make fmt        clang-format the tree
#   make image      (root) the bootable appliance disk image; make install-system

CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr
DESTDIR ?=
# libunbound.pc requires libevent.pc, which Debian ships only with
# libevent-dev; link it by name instead of pulling that in.
PKGS    := liburing lmdb libssl libcrypto yaml-0.1 libsystemd jansson libmicrohttpd libcurl
SAN     ?= 0
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu17 -Wall -Wextra -Werror -D_GNU_SOURCE -Icommon -Idataplane -Icontrol -Ibench -MMD -MP
CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lunbound -lpthread
# DPDK (the dpdk transport, docs/dpdk.md): linked shared, so EAL loads the
# poll-mode drivers (net_tap, vfio NICs) as plugins from its PMD directory.
# Its cflags (-include rte_config.h, -march) apply to transport_dpdk.c only.
DPDK_CFLAGS := $(shell pkg-config --cflags libdpdk 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs libdpdk 2>/dev/null)
# SPF evaluation and DKIM verification (control/spf_eval.c, control/dkim_check.c)
LDLIBS  += -lspf2 -lopendkim
ifeq ($(SAN),1)
BUILD   := build-san
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

MAINS   := dataplane/sluiced.c control/sluicectl.c bench/sluice_sink.c
# The sink's rules parser lives in bench/ but is tested and fuzzed like the
# library, so it is built into it.
LIB_SRC := $(filter-out $(MAINS),$(wildcard common/*.c dataplane/*.c control/*.c bench/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB     := $(BUILD)/libsluice.a
BINS    := $(BUILD)/sluiced $(BUILD)/sluicectl $(BUILD)/sluice-sink
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)

.PHONY: all deps demo test unit fuzz-smoke fuzz e2e bench fmt clean install test-dpdk
all: $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/dataplane/transport_dpdk.o: CFLAGS += $(DPDK_CFLAGS)
$(BUILD)/tests/unit/test_transport_dpdk_workers.o: CFLAGS += $(DPDK_CFLAGS)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/sluiced: $(BUILD)/dataplane/sluiced.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/sluicectl: $(BUILD)/control/sluicectl.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/sluice-sink: $(BUILD)/bench/sluice_sink.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka -lopendkim

# Fuzz targets: clang + libFuzzer, the library rebuilt with the fuzzer's
# coverage instrumentation in its own tree.
FUZZ_CFLAGS := -std=gnu17 -g -O1 -D_GNU_SOURCE -Icommon -Idataplane -Icontrol -Ibench \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c -o $@ $<
build-fuzz/obj/dataplane/transport_dpdk.o: FUZZ_CFLAGS += $(DPDK_CFLAGS)
# An archive, so each target links only the objects it uses (and make
# keeps the objects instead of treating them as intermediate).
build-fuzz/libsluice.a: $(LIB_SRC:%.c=build-fuzz/obj/%.o)
	$(AR) rcs $@ $^
build-fuzz/%: tests/fuzz/%.c build-fuzz/libsluice.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

deps:
	@./tests/deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

fuzz-smoke: $(FUZZ_BIN)
	@./tests/fuzz/run.sh $(FUZZ_SMOKE_SECONDS) $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@./tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

e2e: $(BINS)
	SLUICE_BUILD=$(BUILD) ./tests/netns.sh /usr/bin/python3 -m pytest -q -rs tests/e2e $(PYTEST_ARGS)

# The DPDK transport alone: the userspace stack's unit tests, then the e2e
# delivery over a net_tap port. Exits 77 when no TAP port can be made.
DPDK_UNIT := $(filter $(BUILD)/tests/test_net_% $(BUILD)/tests/test_transport_dpdk%,$(UNIT_BIN))
test-dpdk: $(BINS) $(DPDK_UNIT)
	@set -e; for t in $(DPDK_UNIT); do echo "== $$t"; $$t; done
	SLUICE_BUILD=$(BUILD) ./tests/netns.sh ./tests/e2e/dpdk.sh $(PYTEST_ARGS)

# Builds run on every core; the tests themselves one after the other.
JOBS := $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(MAKE) -j$(JOBS) all $(UNIT_BIN) $(FUZZ_BIN)
	$(MAKE) unit
	$(MAKE) fuzz-smoke
	$(MAKE) e2e

demo: deps
	$(MAKE) all
	@./tests/demo.sh $(BUILD)

# make bench [SCENARIO=name]: every shipped scenario, or one (bench/scenarios/);
# then DKIM signing against raw OpenSSL on one core.
bench: deps
	$(MAKE) all $(BUILD)/dkim-bench
	@./bench/run.sh $(BUILD) $(SCENARIO)
	@[ -n "$(SCENARIO)" ] || $(BUILD)/dkim-bench

$(BUILD)/dkim-bench: bench/dkim_bench/main.c $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lopendkim

# make build/warmup-bench: the warm-up gate's cost per message (docs/warmup.md).
$(BUILD)/warmup-bench: bench/warmup_bench/main.c $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make build/sched-bench: queue + shaping cost per message (docs/shaping.md).
$(BUILD)/sched-bench: bench/sched_bench/main.c $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

fmt:
	clang-format -i $$(git ls-files '*.c' '*.h')

install: $(BINS)
	install -D -m 0755 $(BUILD)/sluiced $(DESTDIR)$(PREFIX)/sbin/sluiced
	install -D -m 0755 $(BUILD)/sluicectl $(DESTDIR)$(PREFIX)/bin/sluicectl
	install -D -m 0755 $(BUILD)/sluice-sink $(DESTDIR)$(PREFIX)/bin/sluice-sink
	install -D -m 0644 configs/sluice.yaml $(DESTDIR)/etc/sluice/sluice.yaml
	install -D -m 0644 configs/bounce-rules.conf $(DESTDIR)/etc/sluice/bounce-rules.conf
	install -D -m 0644 configs/providers.conf $(DESTDIR)/etc/sluice/providers.conf
	install -D -m 0644 configs/shaping.yaml $(DESTDIR)/etc/sluice/shaping.yaml
	install -D -m 0644 configs/warmup.yaml $(DESTDIR)/etc/sluice/warmup.yaml
	install -D -m 0644 configs/response-rules.conf $(DESTDIR)/etc/sluice/response-rules.conf
	install -D -m 0644 configs/policy.yaml $(DESTDIR)/etc/sluice/policy.yaml

# install-system, image, image-check: the appliance (docs/image.md).
include image/image.mk

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) build-fuzz -path '$(BUILD)/image' -prune -o -name '*.d' -type f -print 2>/dev/null)
