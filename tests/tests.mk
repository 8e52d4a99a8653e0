# Tests: cmocka unit tests, fuzzers (libFuzzer) with replay binaries, integration.
# Included from the top-level Makefile.

UNIT_TESTS := vmm-argv qmp ttrpc util oci-spec ttrpc-server image event settings logfile stream \
	shim-events template bundle grpc cri cri-spec cri-stream
UNIT_BINS := $(patsubst %,$(BUILD)/tests/test-%,$(UNIT_TESTS))

$(BUILD)/tests/test-%: tests/unit/test-%.c $(LIB_SANDBOX) $(LIB_VMM) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DSRCDIR='"$(CURDIR)"' -o $@ $^ -lcmocka $(HOST_LIBS)

# The template store (sandbox/sandbox-template.c) in a temporary state root, no QEMU.
$(BUILD)/tests/test-template: tests/unit/test-template.c $(LIB_SANDBOX) $(LIB_VMM) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS)

$(BUILD)/tests/test-logfile $(BUILD)/tests/test-stream $(BUILD)/tests/test-bundle: $(BUILD)/tests/test-%: tests/unit/test-%.c $(LIB_POD) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS)

$(BUILD)/tests/test-shim-events: tests/unit/test-shim-events.c $(LIB_SHIM) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ishim $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS)

$(BUILD)/tests/test-grpc: tests/unit/test-grpc.c $(call obj,cri/grpc-server.c) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Icri $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS) $(CRI_LIBS)

# The streaming server (exec/attach/port-forward URLs) against real TCP clients on loopback.
CRI_STREAM_SRC := cri/cri-stream.c cri/cri-stream-http.c cri/cri-stream-spdy.c cri/cri-stream-ws.c
$(BUILD)/tests/test-cri-stream: tests/unit/test-cri-stream.c $(call obj,$(CRI_STREAM_SRC)) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Icri $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS) $(CRI_LIBS)

# The CRI spec builder is pure: linked with what reads its specs, the shim's bundle parser
# and rewrite for the guest, and the guest's OCI parser.
$(BUILD)/tests/test-cri-spec: tests/unit/test-cri-spec.c cri/cri-spec.c pod/bundle.c \
		pod/task-spec.c agent/container/oci-spec.c $(LIB_COMMON) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Icri -Iagent $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS)

$(BUILD)/tests/test-cri: tests/unit/test-cri.c $(call obj,cri/cri-log.c cri/cri-config.c) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Icri $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS)

$(BUILD)/tests/test-image: tests/unit/test-image.c $(LIB_IMAGE) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ -lcmocka $(HOST_LIBS) $(IMAGE_LIBS)

# The config.json parser is guest code, but pure: its test links it directly.
$(BUILD)/tests/test-oci-spec: tests/unit/test-oci-spec.c agent/container/oci-spec.c $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iagent $(CFLAGS) -DSRCDIR='"$(CURDIR)"' -o $@ $^ -lcmocka $(HOST_LIBS)

# ---- fuzzers: one per untrusted surface ----
FUZZERS := ttrpc-frame agent-request qmp-reply pod-guest oci-spec bundle-config ttrpc-server \
	shim-config shim-spec task-service image-spec image-layer cni-result cri-grpc cri-spec \
	cri-stream-http cri-stream-spdy cri-stream-ws
FUZZ_COMMON := $(COMMON_SRC) $(PROTO_C)
FUZZ_SRC_ttrpc-frame := $(FUZZ_COMMON)
FUZZ_SRC_agent-request := agent/agent-service.c agent/agent-process.c agent/agent-stdio.c \
	agent/agent-spec.c agent/agent-init.c agent/container/spec.c \
	agent/container/oci-spec.c \
	agent/agent-net-check.c tests/fuzz/container-stub.c $(FUZZ_COMMON)
FUZZ_SRC_qmp-reply := vmm/vmm-qmp.c $(FUZZ_COMMON)
# The pod core and what it stands on, host mounts stubbed (fuzz-mount-stubs.c).
FUZZ_POD := $(filter-out pod/pod-mount.c,$(POD_SRC)) tests/fuzz/fuzz-mount-stubs.c \
	$(SANDBOX_SRC) $(VMM_SRC)
FUZZ_SRC_pod-guest := $(FUZZ_POD) $(FUZZ_COMMON)
FUZZ_SRC_oci-spec := agent/container/oci-spec.c $(FUZZ_COMMON)
FUZZ_SRC_bundle-config := pod/bundle.c $(FUZZ_COMMON)
FUZZ_SRC_ttrpc-server := $(FUZZ_COMMON)
FUZZ_SRC_shim-config := shim/shim-config.c $(VMM_SRC) $(FUZZ_COMMON)
FUZZ_SRC_image-spec := image/image-spec.c $(FUZZ_COMMON)
FUZZ_SRC_cni-result := sandbox/cni.c $(FUZZ_COMMON)
FUZZ_SRC_image-layer := image/image-unpack.c image/image-spec.c $(FUZZ_COMMON)
FUZZ_SRC_shim-spec := pod/task-spec.c pod/bundle.c $(FUZZ_COMMON)
FUZZ_SRC_task-service := $(FUZZ_POD) $(FUZZ_COMMON)
FUZZ_SRC_cri-grpc := cri/grpc-server.c $(FUZZ_COMMON)
FUZZ_SRC_cri-spec := cri/cri-spec.c cri/cri-config.c $(FUZZ_COMMON)
# The three share a fake backend and fixed tokens (and their seed generator).
FUZZ_CRI_STREAM := tests/fuzz/fuzz-cri-stream-backend.c $(CRI_STREAM_SRC) $(FUZZ_COMMON)
FUZZ_SRC_cri-stream-http := $(FUZZ_CRI_STREAM)
FUZZ_SRC_cri-stream-spdy := $(FUZZ_CRI_STREAM)
FUZZ_SRC_cri-stream-ws := $(FUZZ_CRI_STREAM)
FUZZ_CFLAGS := -std=gnu11 -O1 -g -fno-omit-frame-pointer $(CPPFLAGS) -Iagent -Ishim -Icri
REPLAY_BINS := $(patsubst %,$(BUILD)/fuzz/replay-%,$(FUZZERS))
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz/fuzz-%,$(FUZZERS))
FUZZ_TIME ?= 60

.SECONDEXPANSION:
# Replays run under ASan/UBSan with the normal compiler: every corpus, every `make check`.
$(BUILD)/fuzz/replay-%: tests/fuzz/fuzz-%.c tests/fuzz/replay.c $$(FUZZ_SRC_$$*) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CFLAGS) -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		-o $@ $(filter %.c,$^) $(HOST_LIBS) $(IMAGE_LIBS) $(CRI_LIBS) -lpthread

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $$(FUZZ_SRC_$$*) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c,$^) \
		$(HOST_LIBS) $(IMAGE_LIBS) $(CRI_LIBS) -lpthread

# `make fuzz` runs each fuzzer for FUZZ_TIME seconds, growing its corpus in place.
fuzz: $(FUZZ_BINS)
	@for f in $(FUZZERS); do \
		echo "fuzz-$$f: $(FUZZ_TIME)s"; \
		$(BUILD)/fuzz/fuzz-$$f -max_total_time=$(FUZZ_TIME) -max_len=65536 \
			tests/fuzz/corpus/$$f || exit 1; \
	done

unit: $(UNIT_BINS)
fuzz-replay: $(REPLAY_BINS)

check: all $(UNIT_BINS) $(REPLAY_BINS)
	@HULL_UNIT_TESTS="$(UNIT_TESTS)" HULL_FUZZERS="$(FUZZERS)" tests/run-all.sh

integration: all $(BUILD)/tests/agentctl
	@HULL_TEST_ONLY=integration tests/run-all.sh


# Test tool: drives a real sandbox through the pod core from a script (pods, exec).
$(BUILD)/tests/agentctl: tests/tools/agentctl.c $(LIB_POD) $(LIB_SANDBOX) $(LIB_VMM) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $^ $(HOST_LIBS)
check: $(BUILD)/tests/agentctl

# ---- containerd shim tests: OCI image archives for `ctr images import`, the CRI client ----
TEST_IMAGES := $(EMBEDDED_IMAGE) $(BUILD)/tests/images/pause.tar
$(BUILD)/tests/pause-root/pause: $(PAUSE)
	@mkdir -p $(dir $@)
	cp $< $@
# The run suite's setuid probe (no_new_privs against runc).
$(BUILD)/tests/euid: tests/tools/euid.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -static -o $@ $<
check integration: $(BUILD)/tests/euid
# The SPDY/3.1 client of cri.sh's streaming test (kubectl's exec and port-forward), framing
# with the streaming server's own codec: linked with its objects.
$(BUILD)/tests/spdyexec: tests/tools/spdyexec.c $(call obj,$(CRI_STREAM_SRC)) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Icri $(CFLAGS) -o $@ $^ $(HOST_LIBS) $(CRI_LIBS)
check integration: $(BUILD)/tests/spdyexec
$(BUILD)/tests/images/pause.tar: $(BUILD)/tests/pause-root/pause scripts/mkimage-oci.py
	@mkdir -p $(dir $@)
	/usr/bin/python3 scripts/mkimage-oci.py $(BUILD)/tests/pause-root $@ hull.test/pause:1 --cmd /pause
$(BUILD)/tests/cri/cri_pb2.py: proto/cri.proto
	@mkdir -p $(dir $@)
	protoc --python_out=$(dir $@) -Iproto $<
check integration: $(TEST_IMAGES) $(BUILD)/tests/cri/cri_pb2.py

bench: all $(BUILD)/bench/initramfs-floor.cpio $(TEST_IMAGES) $(BUILD)/tests/cri/cri_pb2.py $(BUILD)/tests/agentctl
	@bench/run.sh

# The hostile guest of tests/integration/hostile.sh: a scripted evil agent as /init.
$(BUILD)/tests/evil-agent: tests/tools/evil-agent.c $(LIB_AGENT) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iagent $(CFLAGS) -static -o $@ $^ -lprotobuf-c -ljson-c -lseccomp
$(BUILD)/tests/evil-initramfs.cpio: $(BUILD)/tests/evil-agent scripts/mkinitramfs.sh
	scripts/mkinitramfs.sh $< $@
check integration: $(BUILD)/tests/evil-initramfs.cpio
