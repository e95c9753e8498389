# libFuzzer targets for the virtio device model (clang; Debian packages
# clang and libclang-rt-14-dev). `make fuzz` builds them; `make test` runs
# each for FUZZ_SECONDS on a corpus seeded with well-formed requests.
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 20
FUZZ_FLAGS   := -std=c++20 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
                -I. -MMD -MP
FUZZ_SRCS    := tests/fuzz/virtqueue_fuzz.cpp devices/virtio/virtqueue.cpp devices/virtio/virtio_blk.cpp \
                devices/virtio/virtio_pci.cpp devices/pci/pci_device.cpp devices/pci/pci_host_bridge.cpp \
                devices/bus.cpp irqchip/irq_router.cpp vmm/guest_memory.cpp
FUZZ_OBJS    := $(FUZZ_SRCS:%.cpp=$(BUILD)/fuzz/obj/%.o)
FUZZ_CORPUS  := $(BUILD)/fuzz/corpus

$(BUILD)/fuzz/obj/%.o: %.cpp
	@mkdir -p $(@D)
	@command -v $(FUZZ_CXX) >/dev/null || { echo "fuzz: $(FUZZ_CXX) not found (apt-get install clang libclang-rt-14-dev)"; exit 1; }
	$(FUZZ_CXX) $(FUZZ_FLAGS) -c -o $@ $<

$(BUILD)/fuzz/virtqueue_fuzz: $(FUZZ_OBJS)
	$(FUZZ_CXX) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

.PHONY: fuzz fuzz-test bench-blk
fuzz: $(BUILD)/fuzz/virtqueue_fuzz

# Records "PASS: fuzz virtqueue" or "FAIL: ..." in $KVMINI_TEST_RESULTS when set
# (scripts/run-tests.sh); a crash input is left in $(BUILD)/fuzz/.
fuzz-test:
	@mkdir -p $(FUZZ_CORPUS)
	@if $(MAKE) --no-print-directory $(BUILD)/fuzz/virtqueue_fuzz && \
	    KVMINI_FUZZ_SEED_DIR=$(FUZZ_CORPUS) $(BUILD)/fuzz/virtqueue_fuzz -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ $(FUZZ_CORPUS); \
	then r="PASS: fuzz virtqueue ($(FUZZ_SECONDS)s)"; s=0; \
	else r="FAIL: fuzz virtqueue (build failed, or a crash input in $(BUILD)/fuzz/)"; s=1; fi; \
	echo "$$r"; if [ -n "$${KVMINI_TEST_RESULTS:-}" ]; then echo "$$r" >> "$$KVMINI_TEST_RESULTS"; fi; exit $$s

# 4 KiB random-read IOPS and 1 MiB sequential MB/s, device model vs the file directly.
bench-blk:
	scripts/bench-blk.sh

-include $(FUZZ_OBJS:.o=.d)
TEST_TARGETS += fuzz-test
