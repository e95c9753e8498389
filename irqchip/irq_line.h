// What a device holds to interrupt the guest, and nothing more (as QEMU's
// qemu_irq): a line whose level it sets, or an MSI sender. Neither knows the
// irqchip mode; both end in the IrqRouter, which is the only path to a vCPU.
#pragma once

#include <cstdint>

namespace kvmini {

// An MSI as written on the bus: address (0xfeeXXXXX, destination in bits
// 19:12) and data (vector in bits 7:0, delivery mode in 10:8). Intel SDM vol. 3A
// 11.11 "Message Signalled Interrupts".
struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
    bool operator==(const MsiMessage&) const = default;
};

class IrqRouter;

class IrqLine {
public:
    IrqLine() = default;  // not connected: set_level() does nothing
    IrqLine(IrqRouter* router, uint32_t gsi, uint32_t source) : router_(router), gsi_(gsi), source_(source) {}

    // The device's output level. On a line shared by several devices the GSI
    // is high while any of them holds its line high.
    void set_level(bool high);
    // An edge: high then low.
    void pulse()
    {
        set_level(true);
        set_level(false);
    }

    bool connected() const { return router_ != nullptr; }
    uint32_t gsi() const { return gsi_; }

private:
    IrqRouter* router_ = nullptr;
    uint32_t gsi_ = 0;
    uint32_t source_ = 0;
};

class MsiSender {
public:
    MsiSender() = default;
    explicit MsiSender(IrqRouter* router) : router_(router) {}
    void send(const MsiMessage& msg) const;
    bool connected() const { return router_ != nullptr; }

private:
    IrqRouter* router_ = nullptr;
};

}  // namespace kvmini
