#include "devices/test/debug_exit.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "devices/le.h"

namespace kvmini {

void DebugExit::read(uint64_t /*offset*/, std::span<uint8_t> data)
{
    std::fill(data.begin(), data.end(), uint8_t{0xff});
}

void DebugExit::write(uint64_t offset, std::span<const uint8_t> data)
{
    // The value as written (little-endian, the access's width), wherever in
    // the 4-port window: QEMU ignores the address too.
    const uint64_t value = le::load(data);
    writes_.fetch_add(1, std::memory_order_relaxed);
    const int status = debug_exit::exit_status(value);
    spdlog::debug("isa-debug-exit: guest wrote {:#x} at port {:#x}: exit status {}", value,
                  debug_exit::kPort + offset, status);
    if (exit_) exit_(status);
}

}  // namespace kvmini
