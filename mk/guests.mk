# The interrupt conformance guests (guests/tests/*.c, one Multiboot ELF each,
# on the runtime in guests/tests/lib/) and their matrix runner, which runs each
# guest in every irqchip mode (tests/integration/guest_matrix.sh).
#
#   make guests        builds $(BUILD)/guests/*.elf
#   make guest-tests   builds kvmini and the guests, runs the matrix (part of `make test`)
#
# The guests are freestanding x86-64 code (entered in 32-bit mode by the
# Multiboot loader, they switch to long mode: guests/tests/lib/boot.S says
# why) built with the host compiler: no libc, no libgcc.
GUEST_CC      ?= gcc
GUEST_LD      ?= ld
GUEST_CFLAGS  := -m64 -mcmodel=small -std=gnu11 -O2 -g -Wall -Wextra -Werror=implicit-function-declaration \
                 -ffreestanding -nostdlib -fno-builtin -fno-pic -fno-pie -fno-stack-protector \
                 -fno-asynchronous-unwind-tables -fno-omit-frame-pointer -mgeneral-regs-only -mno-red-zone \
                 -Iguests/tests/lib -MMD -MP
GUEST_LDFLAGS := -m elf_x86_64 -static -nostdlib -T guests/tests/lib/link.ld -z max-page-size=0x1000 \
                 -z noexecstack --build-id=none --no-warn-rwx-segments
GUEST_LIB_OBJS := $(patsubst guests/tests/lib/%,$(BUILD)/guests/lib/%.o,\
                    $(sort $(wildcard guests/tests/lib/*.c guests/tests/lib/*.S)))
GUEST_NAMES   := $(sort $(basename $(notdir $(wildcard guests/tests/*.c))))
GUEST_ELFS    := $(GUEST_NAMES:%=$(BUILD)/guests/%.elf)

.PHONY: guests guest-tests
guests: $(GUEST_ELFS)
.SECONDARY: $(GUEST_LIB_OBJS) $(GUEST_NAMES:%=$(BUILD)/guests/%.o)

$(BUILD)/guests/lib/%.c.o: guests/tests/lib/%.c
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BUILD)/guests/lib/%.S.o: guests/tests/lib/%.S
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BUILD)/guests/%.o: guests/tests/%.c
	@mkdir -p $(@D)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BUILD)/guests/%.elf: $(BUILD)/guests/%.o $(GUEST_LIB_OBJS) guests/tests/lib/link.ld
	$(GUEST_LD) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

guest-tests: $(BUILD)/kvmini $(GUEST_ELFS) $(BUILD)/guests/harness_fail.elf
	tests/integration/guest_matrix.sh --no-build

TEST_TARGETS += guest-tests

-include $(GUEST_LIB_OBJS:.o=.d) $(GUEST_NAMES:%=$(BUILD)/guests/%.d)
