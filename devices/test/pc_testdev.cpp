#include "devices/test/pc_testdev.h"

namespace kvmini {

PcTestdevIrq::PcTestdevIrq(IrqSink& router)
{
    for (uint32_t n = 0; n < pc_testdev::kLines; ++n) lines_[n] = router.line(n);
}

void PcTestdevIrq::read(uint64_t offset, std::span<uint8_t> data)
{
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t n = offset + i;
        data[i] = n < pc_testdev::kLines && levels_[n] ? 1 : 0;
    }
}

void PcTestdevIrq::write(uint64_t offset, std::span<const uint8_t> data)
{
    std::lock_guard lock(mutex_);
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t n = offset + i;
        if (n >= pc_testdev::kLines) {
            ignored_writes_.fetch_add(1, std::memory_order_relaxed);
            continue;
        }
        writes_.fetch_add(1, std::memory_order_relaxed);
        levels_[n] = data[i] != 0;
        lines_[n].set_level(levels_[n]);
    }
}

bool PcTestdevIrq::level(uint32_t line) const
{
    std::lock_guard lock(mutex_);
    return line < pc_testdev::kLines && levels_[line];
}

}  // namespace kvmini
