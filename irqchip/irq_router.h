// The routing layer: every interrupt from a device passes here. It hands out
// lines (a GSI plus a source id, so that level lines can be shared: the GSI is
// high while any source holds it high), and passes level changes and MSIs on
// to the irqchip backend of the mode in use.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

#include "irqchip/gsi_layout.h"
#include "devices/irq_line.h"
#include "irqchip/irqchip.h"

namespace kvmini {

class IrqRouter : public IrqSink {
public:
    explicit IrqRouter(IrqChip& chip) : chip_(chip) {}

    // A new source on `gsi` (0..23). Throws Error for a GSI out of range or
    // more than 64 sources on one GSI.
    IrqLine line(uint32_t gsi) override;
    MsiSender msi_sender() override { return MsiSender(this); }

    void set_level(uint32_t gsi, uint32_t source, bool level) override;
    void send_msi(const MsiMessage& msg) override;

    bool gsi_level(uint32_t gsi) const;

private:
    IrqChip& chip_;
    mutable std::mutex mutex_;
    std::array<uint64_t, gsi::kIoapicPins> asserted_{};   // bit per source
    std::array<uint32_t, gsi::kIoapicPins> sources_{};    // sources handed out
};

}  // namespace kvmini
