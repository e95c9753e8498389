// What a device holds to interrupt the guest, and nothing more (as QEMU's
// qemu_irq): a line whose level it sets, or an MSI sender. Neither knows the
// irqchip mode; both end in an IrqSink, which the routing layer
// (irqchip/irq_router.h) implements: the only path to a vCPU. This header
// depends on nothing, so devices/ includes nothing from irqchip/.
#pragma once

#include <cstdint>

namespace kvmini {

// GSIs are numbered 0..kGsiCount-1, one per I/O APIC input pin (82093AA: 24
// redirection entries); irqchip/gsi_layout.h says how they are wired.
inline constexpr uint32_t kGsiCount = 24;

// An MSI as written on the bus: address (0xfeeXXXXX, destination in bits
// 19:12) and data (vector in bits 7:0, delivery mode in 10:8). Intel SDM vol. 3A
// 11.11 "Message Signalled Interrupts".
struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
    bool operator==(const MsiMessage&) const = default;
};

class IrqLine;
class MsiSender;

// Where lines and MSIs end.
class IrqSink {
public:
    virtual ~IrqSink() = default;
    // A new source on `gsi` (a line of its own, ORed with the GSI's others).
    virtual IrqLine line(uint32_t gsi) = 0;
    virtual MsiSender msi_sender() = 0;
    virtual void set_level(uint32_t gsi, uint32_t source, bool level) = 0;
    virtual void send_msi(const MsiMessage& msg) = 0;
};

class IrqLine {
public:
    IrqLine() = default;  // not connected: set_level() does nothing
    IrqLine(IrqSink* sink, uint32_t gsi, uint32_t source) : sink_(sink), gsi_(gsi), source_(source) {}

    // The device's output level. On a line shared by several devices the GSI
    // is high while any of them holds its line high.
    void set_level(bool high)
    {
        if (sink_) sink_->set_level(gsi_, source_, high);
    }
    // An edge: high then low.
    void pulse()
    {
        set_level(true);
        set_level(false);
    }

    bool connected() const { return sink_ != nullptr; }
    uint32_t gsi() const { return gsi_; }

private:
    IrqSink* sink_ = nullptr;
    uint32_t gsi_ = 0;
    uint32_t source_ = 0;
};

class MsiSender {
public:
    MsiSender() = default;
    explicit MsiSender(IrqSink* sink) : sink_(sink) {}
    void send(const MsiMessage& msg) const
    {
        if (sink_) sink_->send_msi(msg);
    }
    bool connected() const { return sink_ != nullptr; }

private:
    IrqSink* sink_ = nullptr;
};

}  // namespace kvmini
