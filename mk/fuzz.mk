# libFuzzer targets (clang; Debian packages clang and libclang-rt-14-dev):
# the virtio device model (virtqueue_fuzz, its corpus seeded with well-formed
# requests) and the local APIC model as a hostile guest drives it in user
# mode (lapic_fuzz). `make fuzz` builds them; `make test` runs each for
# FUZZ_SECONDS.
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

LAPIC_FUZZ_SRCS := tests/fuzz/lapic_fuzz.cpp irqchip/models/lapic.cpp
LAPIC_FUZZ_OBJS := $(LAPIC_FUZZ_SRCS:%.cpp=$(BUILD)/fuzz/obj/%.o)
$(BUILD)/fuzz/lapic_fuzz: $(LAPIC_FUZZ_OBJS)
	$(FUZZ_CXX) -fsanitize=fuzzer,address,undefined -o $@ $^

.PHONY: fuzz fuzz-test bench-blk
fuzz: $(BUILD)/fuzz/virtqueue_fuzz $(BUILD)/fuzz/lapic_fuzz

# Records "PASS: fuzz NAME" or "FAIL: ..." per target in $KVMINI_TEST_RESULTS
# when set (scripts/run-tests.sh); a crash input is left in $(BUILD)/fuzz/.
FUZZ_TARGETS := virtqueue lapic
fuzz-test:
	@mkdir -p $(FUZZ_CORPUS) $(BUILD)/fuzz/lapic-corpus
	@s=0; for t in $(FUZZ_TARGETS); do \
	  corpus=$(FUZZ_CORPUS); [ $$t = virtqueue ] || corpus=$(BUILD)/fuzz/$$t-corpus; \
	  if $(MAKE) --no-print-directory $(BUILD)/fuzz/$${t}_fuzz && \
	     KVMINI_FUZZ_SEED_DIR=$(FUZZ_CORPUS) $(BUILD)/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) \
	     -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/$$t- $$corpus; \
	  then r="PASS: fuzz $$t ($(FUZZ_SECONDS)s)"; \
	  else r="FAIL: fuzz $$t (build failed, or a crash input $(BUILD)/fuzz/$$t-crash-*)"; s=1; fi; \
	  echo "$$r"; if [ -n "$${KVMINI_TEST_RESULTS:-}" ]; then echo "$$r" >> "$$KVMINI_TEST_RESULTS"; fi; \
	done; exit $$s

# 4 KiB random-read IOPS and 1 MiB sequential MB/s, device model vs the file directly.
bench-blk:
	scripts/bench-blk.sh

-include $(FUZZ_OBJS:.o=.d) $(LAPIC_FUZZ_OBJS:.o=.d)
TEST_TARGETS += fuzz-test
