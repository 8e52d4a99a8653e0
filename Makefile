# hull — top-level build. `make deps` installs Debian packages; `make` builds binaries,
# the guest kernel (cached outside the tree), the initramfs and the demo rootfs;
# `make check` runs unit tests, fuzz corpora and integration tests.

HULL_VERSION := 0.1.0
BUILD ?= build
CC ?= gcc
FUZZ_CC ?= clang
WERROR ?= 1

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
	-Wimplicit-fallthrough -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif
# -Ulinux: gnu11 predefines `linux`, and the CRI's messages have fields of that name.
CPPFLAGS += -Ulinux -D_GNU_SOURCE -DHULL_VERSION='"$(HULL_VERSION)"' -Icommon -I$(BUILD)/proto \
	-Ivmm -Isandbox -Ipod -Iimage
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -fstack-protector-strong -MMD -MP

PROTO_SRC := proto/ttrpc.proto proto/agent.proto proto/shim-task.proto proto/shim-events.proto \
	proto/cri.proto
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/proto/%.pb-c.c,$(PROTO_SRC))
PROTO_H := $(PROTO_C:.c=.h)

COMMON_SRC := $(wildcard common/*.c)
VMM_SRC := $(wildcard vmm/*.c)
SANDBOX_SRC := $(wildcard sandbox/*.c)
POD_SRC := $(wildcard pod/*.c)
AGENT_LIB_SRC := $(filter-out agent/agent-main.c,$(wildcard agent/*.c)) $(wildcard agent/container/*.c)
CLI_SRC := $(wildcard cli/*.c)
SHIM_SRC := $(wildcard shim/*.c)
IMAGE_SRC := $(wildcard image/*.c)
SHIM_LIB_SRC := $(filter-out shim/shim-main.c,$(SHIM_SRC))
CRI_LIB_SRC := $(filter-out cri/cri-main.c cri/hull-pause.c,$(wildcard cri/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON := $(BUILD)/libhullcommon.a
LIB_VMM := $(BUILD)/libhullvmm.a
LIB_SANDBOX := $(BUILD)/libhullsandbox.a
LIB_POD := $(BUILD)/libhullpod.a
LIB_AGENT := $(BUILD)/libhullagent.a
LIB_SHIM := $(BUILD)/libhullshim.a
LIB_IMAGE := $(BUILD)/libhullimage.a
LIB_CRI := $(BUILD)/libhullcri.a

HULL := $(BUILD)/hull
SHIM := $(BUILD)/containerd-shim-hull-v2
CRI := $(BUILD)/hull-cri
PAUSE := $(BUILD)/hull-pause
AGENT := $(BUILD)/hull-agent
KERNEL := $(BUILD)/guest/vmlinuz
INITRAMFS := $(BUILD)/guest/initramfs.cpio
DEMO_ROOTFS := $(BUILD)/rootfs-demo/.stamp
# The embedded image: `hull run busybox` works with no registry (docs/images.md).
EMBEDDED_IMAGE := $(BUILD)/images/busybox.tar

HOST_LIBS := -lprotobuf-c -ljson-c
IMAGE_LIBS := -larchive -lcrypto -lcurl
CRI_LIBS := -lnghttp2 -lwslay -lz -lcrypto

.PHONY: all deps check unit fuzz-replay fuzz integration bench format format-check clean kernel install
all: $(HULL) $(SHIM) $(CRI) $(PAUSE) $(AGENT) $(KERNEL) $(INITRAMFS) $(DEMO_ROOTFS) $(EMBEDDED_IMAGE)

deps:
	@./scripts/deps.sh

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/proto
	protoc-c --c_out=$(BUILD)/proto -Iproto $<

# Host and guest meet only in proto/: agent headers are visible to guest code alone.
$(BUILD)/obj/agent/%.o $(BUILD)/obj/bench/%.o: CPPFLAGS += -Iagent
$(BUILD)/obj/cri/%.o: CPPFLAGS += -Icri

$(BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Generated code is not ours to warn about.
$(BUILD)/obj/$(BUILD)/proto/%.o: $(BUILD)/proto/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O2 -g -std=gnu11 -c $< -o $@

$(LIB_COMMON): $(call obj,$(COMMON_SRC)) $(call obj,$(PROTO_C))
$(LIB_VMM): $(call obj,$(VMM_SRC))
$(LIB_SANDBOX): $(call obj,$(SANDBOX_SRC))
$(LIB_POD): $(call obj,$(POD_SRC))
$(LIB_AGENT): $(call obj,$(AGENT_LIB_SRC))
$(LIB_SHIM): $(call obj,$(SHIM_LIB_SRC))
$(LIB_IMAGE): $(call obj,$(IMAGE_SRC))
$(LIB_CRI): $(call obj,$(CRI_LIB_SRC))
$(BUILD)/%.a:
	@rm -f $@
	ar rcs $@ $^

# Front ends over the pod core: hull does not link shim/ (hull run -d serves the same
# Task service, pod/task-service.c, as the containerd shim).
$(HULL): $(call obj,$(CLI_SRC)) $(LIB_POD) $(LIB_IMAGE) $(LIB_SANDBOX) $(LIB_VMM) $(LIB_COMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(HOST_LIBS) $(IMAGE_LIBS)

$(SHIM): $(call obj,shim/shim-main.c) $(LIB_SHIM) $(LIB_POD) $(LIB_SANDBOX) $(LIB_VMM) $(LIB_COMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(HOST_LIBS)

$(CRI): $(call obj,cri/cri-main.c) $(LIB_CRI) $(LIB_IMAGE) $(LIB_SANDBOX) $(LIB_VMM) $(LIB_COMMON)
	$(CC) $(CFLAGS) -o $@ $^ $(HOST_LIBS) $(IMAGE_LIBS) $(CRI_LIBS) -lpthread

# A hull-cri pod's sandbox task: static, alone in its root.
$(PAUSE): cri/hull-pause.c
	$(CC) -O2 -static -o $@ $<

# The agent is PID 1 of an initramfs with nothing else in it: fully static.
$(AGENT): $(call obj,agent/agent-main.c) $(LIB_AGENT) $(LIB_COMMON)
	$(CC) $(CFLAGS) -static -o $@ $^ -lprotobuf-c -ljson-c -lseccomp

kernel: $(KERNEL)
$(KERNEL): guest-kernel-config/build-kernel.sh $(wildcard guest-kernel-config/*.config)
	@mkdir -p $(dir $@)
	guest-kernel-config/build-kernel.sh $@

$(INITRAMFS): $(AGENT) scripts/mkinitramfs.sh
	@mkdir -p $(dir $@)
	scripts/mkinitramfs.sh $(AGENT) $@

$(DEMO_ROOTFS): scripts/mkrootfs-demo.sh
	scripts/mkrootfs-demo.sh $(BUILD)/rootfs-demo

$(EMBEDDED_IMAGE): $(DEMO_ROOTFS) scripts/mkimage-oci.py
	@mkdir -p $(dir $@)
	/usr/bin/python3 scripts/mkimage-oci.py $(BUILD)/rootfs-demo $@ docker.io/library/busybox:latest

.SECONDARY: $(PROTO_C) $(PROTO_H)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

include tests/tests.mk

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

# Benchmark floors: a static init that powers off at once (or writes raw bytes into
# the agent port) and its initramfs.
$(BUILD)/bench/bench-init: $(call obj,bench/bench-init.c) $(LIB_AGENT) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -o $@ $^ -lprotobuf-c -ljson-c -lseccomp
$(BUILD)/bench/initramfs-floor.cpio: $(BUILD)/bench/bench-init scripts/mkinitramfs.sh
	scripts/mkinitramfs.sh $< $@

# `make install` (PREFIX=/usr/local): hull and the containerd shim in bin/ (containerd
# finds containerd-shim-hull-v2 on its PATH), the guest in lib/hull/.
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/hull/images
	install -m 0755 $(HULL) $(SHIM) $(CRI) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(PAUSE) $(DESTDIR)$(PREFIX)/lib/hull/
	install -m 0644 $(KERNEL) $(INITRAMFS) $(DESTDIR)$(PREFIX)/lib/hull/
	install -m 0644 $(EMBEDDED_IMAGE) $(DESTDIR)$(PREFIX)/lib/hull/images/
