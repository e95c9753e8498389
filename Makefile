# kvmini build. `make` builds build/kvmini; `make test` builds and runs every test.
# Sources are picked up by folder, so adding a file needs no edit here.
CXX      ?= g++
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 -Wall -Wextra -I. -MMD -MP
LDLIBS   += -lspdlog -lfmt -pthread
BUILD    := build

CORE_SRCS := $(sort $(wildcard vmm/*.cpp vmm/*/*.cpp devices/*.cpp devices/*/*.cpp irqchip/*.cpp irqchip/*/*.cpp))
MAIN_SRC  := vmm/main.cpp
LIB_SRCS  := $(filter-out $(MAIN_SRC),$(CORE_SRCS))
UNIT_SRCS := $(sort $(wildcard tests/unit/*.cpp))

LIB_OBJS  := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
MAIN_OBJ  := $(MAIN_SRC:%.cpp=$(BUILD)/%.o)
UNIT_OBJS := $(UNIT_SRCS:%.cpp=$(BUILD)/%.o)

.PHONY: all test unit-test boot-test guest-tests setup bench clean
all: $(BUILD)/kvmini

$(BUILD)/libkvmini.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

$(BUILD)/kvmini: $(MAIN_OBJ) $(BUILD)/libkvmini.a
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit-tests: $(UNIT_OBJS) $(BUILD)/libkvmini.a
	$(CXX) $(CXXFLAGS) -o $@ $^ -lgtest -lgtest_main $(LDLIBS)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c -o $@ $<

unit-test: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_OBJS:.o=.d)

# Each area may add its own rules in mk/NAME.mk (test guests, fuzzers, ...) and
# append to TEST_TARGETS, which `make test` runs in order after the unit tests.
TEST_TARGETS :=
include $(sort $(wildcard mk/*.mk))
test: unit-test $(TEST_TARGETS)
