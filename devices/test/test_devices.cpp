#include "devices/test/test_devices.h"

#include "devices/test/debug_exit.h"
#include "devices/test/fw_cfg.h"
#include "devices/test/pc_testdev.h"

namespace kvmini {

TestDevices::TestDevices(Bus& pio, IrqSink& router, const TestDeviceConfig& config) : pio_(pio)
{
    auto exit_dev = std::make_unique<DebugExit>(config.exit);
    auto lines = std::make_unique<PcTestdevIrq>(router);
    auto cfg = std::make_unique<FwCfg>(config.ram_bytes, config.cpus);
    debug_exit_ = exit_dev.get();
    irq_lines_ = lines.get();
    fw_cfg_ = cfg.get();

    struct Claim {
        uint64_t base, len;
        BusDevice* device;
        const char* name;
    };
    const Claim claims[] = {
        {debug_exit::kPort, debug_exit::kPortCount, exit_dev.get(), "isa-debug-exit"},
        {pc_testdev::kIrqPortBase, pc_testdev::kIrqPortCount, lines.get(), "pc-testdev irq lines"},
        {fw_cfg::kSelectorPort, fw_cfg::kPortCount, cfg.get(), "fw_cfg"},
    };
    devices_.push_back(std::move(exit_dev));
    devices_.push_back(std::move(lines));
    devices_.push_back(std::move(cfg));
    try {
        for (const Claim& c : claims) {
            pio_.add(c.base, c.len, *c.device, c.name);
            bases_.push_back(c.base);
        }
    } catch (...) {
        for (uint64_t base : bases_) pio_.remove(base);
        throw;
    }
}

TestDevices::~TestDevices()
{
    for (uint64_t base : bases_) pio_.remove(base);
}

}  // namespace kvmini
