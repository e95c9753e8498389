# Sanitizer builds, part of `make test`:
#
#   tsan-unit-test   the unit tests built with ThreadSanitizer ($(BUILD)/tsan/)
#   asan-unit-test   the unit tests built with AddressSanitizer + UBSan ($(BUILD)/asan/)
#   tsan-guests      kvmini itself built with ThreadSanitizer, running the short
#                    SMP test guests in split and user modes and 2-vCPU runs of
#                    single-CPU guests (tests/integration/tsan_guests.sh)
#
# Any sanitizer report is a failure: TSan halts on the first one
# (halt_on_error=1) and UBSan does not recover. No suppressions. Each target
# prints and appends to $KVMINI_TEST_RESULTS one line "PASS: tsan ..." /
# "FAIL: tsan ... (why)" (asan: "asan+ubsan ..."); the test program's own
# output goes to a log next to it, so run-tests.sh does not count the unit
# tests twice.
#
# The two builds (~65 files each, at -j$(SAN_JOBS)) are the bulk of the time
# these targets add to `make test`, so: -g1 (line tables: every frame of a
# report still has its file and line; about 40% less compile time than -g),
# TSan at -O1, ASan+UBSan at -Og (GCC 12 with UBSan is 1.5-2x slower to
# compile at -O1 than at -Og; -Og keeps the checks and the stacks exact).
# Measured on the shared 2-core machine (load 4-6 from other work): 6.7 min
# from an empty build/tsan and build/asan (TSan 4.0, ASan 2.6, guests 0.1),
# under a minute once the objects are up to date.
SAN_JOBS   ?= 2
SAN_CXX    ?= $(CXX)
SAN_FLAGS  := -std=c++20 -Wall -Wextra -I. -MMD -MP -g1 -fno-omit-frame-pointer
TSAN_FLAGS := -O1 -fsanitize=thread
ASAN_FLAGS := -Og -fsanitize=address,undefined -fno-sanitize-recover=undefined
# Every report fails the run; the second stack of a lock-order inversion too.
TSAN_OPTIONS  ?= halt_on_error=1 second_deadlock_stack=1 exitcode=66
ASAN_OPTIONS  ?= halt_on_error=1 detect_leaks=1 exitcode=67
UBSAN_OPTIONS ?= halt_on_error=1 print_stacktrace=1 exitcode=68
# The unit tests check kvmini's own SIGSEGV handler (the terminal restores its
# settings and re-raises, tests/unit/terminal_test.cpp): there the sanitizer
# must not take SIGSEGV over; a crash still fails the run.
SAN_UNIT_ENV  := TSAN_OPTIONS="$(TSAN_OPTIONS) handle_segv=0" ASAN_OPTIONS="$(ASAN_OPTIONS) handle_segv=0" \
                 UBSAN_OPTIONS="$(UBSAN_OPTIONS)"

TSAN_DIR := $(BUILD)/tsan
ASAN_DIR := $(BUILD)/asan
TSAN_LIB_OBJS  := $(LIB_SRCS:%.cpp=$(TSAN_DIR)/%.o)
TSAN_UNIT_OBJS := $(UNIT_SRCS:%.cpp=$(TSAN_DIR)/%.o)
TSAN_MAIN_OBJ  := $(MAIN_SRC:%.cpp=$(TSAN_DIR)/%.o)
ASAN_LIB_OBJS  := $(LIB_SRCS:%.cpp=$(ASAN_DIR)/%.o)
ASAN_UNIT_OBJS := $(UNIT_SRCS:%.cpp=$(ASAN_DIR)/%.o)

$(TSAN_DIR)/%.o: %.cpp mk/sanitize.mk
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_FLAGS) $(TSAN_FLAGS) -c -o $@ $<

$(ASAN_DIR)/%.o: %.cpp mk/sanitize.mk
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_FLAGS) $(ASAN_FLAGS) -c -o $@ $<

$(TSAN_DIR)/unit-tests: $(TSAN_UNIT_OBJS) $(TSAN_LIB_OBJS)
	$(SAN_CXX) $(TSAN_FLAGS) -o $@ $^ -lgtest -lgtest_main $(LDLIBS)

$(TSAN_DIR)/kvmini: $(TSAN_MAIN_OBJ) $(TSAN_LIB_OBJS)
	$(SAN_CXX) $(TSAN_FLAGS) -o $@ $^ $(LDLIBS)

$(ASAN_DIR)/unit-tests: $(ASAN_UNIT_OBJS) $(ASAN_LIB_OBJS)
	$(SAN_CXX) $(ASAN_FLAGS) -o $@ $^ -lgtest -lgtest_main $(LDLIBS)

.PHONY: sanitize tsan-unit-test asan-unit-test tsan-guests
sanitize: $(TSAN_DIR)/unit-tests $(TSAN_DIR)/kvmini $(ASAN_DIR)/unit-tests

# $(call san_record,WHAT): "PASS: WHAT" if the recipe set ok=1, else
# "FAIL: WHAT (why)"; printed, recorded, and the recipe's exit status.
define san_record
if [ "$$ok" = 1 ]; then r="PASS: $(1)"; s=0; else r="FAIL: $(1) ($$why)"; s=1; fi; \
echo "$$r"; if [ -n "$${KVMINI_TEST_RESULTS:-}" ]; then echo "$$r" >> "$$KVMINI_TEST_RESULTS"; fi; exit $$s
endef

# $(call san_unit_run,BINARY,LOG): runs the unit tests under a sanitizer,
# output in LOG. Sets ok/why; on a failure shows the first report (indented,
# up to its SUMMARY line) or the failed tests.
san_report := WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:
define san_unit_run
ok=0; \
if $(SAN_UNIT_ENV) $(1) >$(2) 2>&1; then ok=1; \
elif grep -q -E '$(san_report)' $(2); then \
  s=$$(grep -m1 '^SUMMARY: ' $(2)); [ -n "$$s" ] || s=$$(grep -m1 -E '$(san_report)' $(2)); \
  why="$$(echo "$$s" | sed 's/^SUMMARY: //; s/^==[0-9]*== *//' | cut -c1-140), in test $$(sed -n -E '/^\[ RUN/h; /$(san_report)/{x;p;q}' $(2) | sed 's/.*\] //'); see $(2)"; \
  sed -n -E '/$(san_report)/,/^SUMMARY/p' $(2) | head -n 60 | sed 's/^/    /'; \
else why="$$(grep -c '^\[  FAILED  \] .*(' $(2)) failed tests or a crash, see $(2)"; \
  grep -E '^\[  FAILED  \] .*\(' $(2) | sed 's/^/    /'; tail -n 5 $(2) | sed 's/^/    /'; fi
endef

tsan-unit-test:
	@ok=0; why="build failed"; \
	if $(MAKE) --no-print-directory -j$(SAN_JOBS) $(TSAN_DIR)/unit-tests $(TSAN_DIR)/kvmini; then \
	  $(call san_unit_run,$(TSAN_DIR)/unit-tests,$(TSAN_DIR)/unit-tests.log); fi; \
	$(call san_record,tsan unit tests)

asan-unit-test:
	@ok=0; why="build failed"; \
	if $(MAKE) --no-print-directory -j$(SAN_JOBS) $(ASAN_DIR)/unit-tests; then \
	  $(call san_unit_run,$(ASAN_DIR)/unit-tests,$(ASAN_DIR)/unit-tests.log); fi; \
	$(call san_record,asan+ubsan unit tests)

# One line per run, written by the script (its default list of guests).
TSAN_GUESTS := ioapic_smp lapic_smp lapic_timer pic $(if $(wildcard guests/tests/ipi_storm.c),ipi_storm)
tsan-guests: $(TSAN_GUESTS:%=$(BUILD)/guests/%.elf)
	@if $(MAKE) --no-print-directory -j$(SAN_JOBS) $(TSAN_DIR)/kvmini; then \
	  TSAN_OPTIONS="$(TSAN_OPTIONS)" KVMINI=$(TSAN_DIR)/kvmini tests/integration/tsan_guests.sh; \
	else r="FAIL: tsan guests (build of $(TSAN_DIR)/kvmini failed)"; echo "$$r"; \
	  if [ -n "$${KVMINI_TEST_RESULTS:-}" ]; then echo "$$r" >> "$$KVMINI_TEST_RESULTS"; fi; exit 1; fi

-include $(TSAN_LIB_OBJS:.o=.d) $(TSAN_UNIT_OBJS:.o=.d) $(TSAN_MAIN_OBJ:.o=.d) $(ASAN_LIB_OBJS:.o=.d) $(ASAN_UNIT_OBJS:.o=.d)
TEST_TARGETS += tsan-unit-test asan-unit-test tsan-guests
