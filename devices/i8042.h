// The PC/AT keyboard controller (Intel 8042 running IBM's AT firmware), at
// ports 0x60 (data) and 0x64 (status / command), with no keyboard or mouse
// attached. kvmini needs it for one thing: command 0xFE pulses the CPU reset
// line, which is how Linux's `reboot=k` (and its default fallback after ACPI)
// resets the machine; kvmini ends the VM then. The rest is the minimal
// correct controller: status register, command byte (0x20/0x60), self-test
// (0xAA -> 0x55), interface test, keyboard/aux enable and disable, and the
// output port (0xD0/0xD1, whose bit 0 is the reset line). Port 0x61 is the
// PIT/speaker's, not ours.
//
// References: Intel UPI-41A/42 (8042) data sheet, "Status Register" (OBF,
// IBF, F0, F1 and user-defined bits); IBM PC AT Technical Reference,
// "Keyboard Controller" section: status register bits, command byte, and the
// commands 20h, 60h, A7h-AEh, D0h, D1h, F0h-FFh.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <span>

#include "devices/bus.h"
#include "devices/irq_line.h"

namespace kvmini {

namespace i8042 {

inline constexpr uint64_t kDataPort = 0x60;
inline constexpr uint64_t kCommandPort = 0x64;  // status on read
// Offsets of the two ports relative to kDataPort, as I8042::read/write take them.
inline constexpr uint64_t kDataOffset = 0;
inline constexpr uint64_t kCommandOffset = kCommandPort - kDataPort;

// Status register (read 0x64). 8042 data sheet "Status Register": OBF, IBF,
// F0 (system flag), F1 (command/data); bits 4-7 as the AT firmware uses them.
inline constexpr uint8_t kStatusObf = 0x01;      // output buffer (0x60) has a byte for the host
inline constexpr uint8_t kStatusIbf = 0x02;      // input buffer full (never: commands complete at once)
inline constexpr uint8_t kStatusSys = 0x04;      // system flag: self-test passed (POST done)
inline constexpr uint8_t kStatusCommand = 0x08;  // last write was to 0x64 (command), not 0x60
inline constexpr uint8_t kStatusUnlocked = 0x10; // keyboard inhibit switch off
inline constexpr uint8_t kStatusAuxObf = 0x20;   // output buffer byte is from the aux device
inline constexpr uint8_t kStatusTimeout = 0x40;
inline constexpr uint8_t kStatusParity = 0x80;

// Command byte (controller RAM 0), AT Technical Reference "Command Byte".
inline constexpr uint8_t kCmdKbdInt = 0x01;        // IRQ 1 when the output buffer fills
inline constexpr uint8_t kCmdAuxInt = 0x02;        // IRQ 12 (PS/2)
inline constexpr uint8_t kCmdSys = 0x04;           // copied to the status system flag
inline constexpr uint8_t kCmdKbdDisabled = 0x10;
inline constexpr uint8_t kCmdAuxDisabled = 0x20;
inline constexpr uint8_t kCmdTranslate = 0x40;     // scan code set 2 -> 1 translation

// Output port (8042 P2), read by 0xD0, written by 0xD1 and pulsed by 0xFx.
inline constexpr uint8_t kOutResetLine = 0x01;  // 0 = CPU reset asserted
inline constexpr uint8_t kOutA20 = 0x02;        // gate A20 (KVM's A20 is always on)

// Controller commands (written to 0x64).
inline constexpr uint8_t kReadCommandByte = 0x20;
inline constexpr uint8_t kWriteCommandByte = 0x60;
inline constexpr uint8_t kDisableAux = 0xa7;
inline constexpr uint8_t kEnableAux = 0xa8;
inline constexpr uint8_t kSelfTest = 0xaa;
inline constexpr uint8_t kKbdInterfaceTest = 0xab;
inline constexpr uint8_t kDisableKbd = 0xad;
inline constexpr uint8_t kEnableKbd = 0xae;
inline constexpr uint8_t kReadOutputPort = 0xd0;
inline constexpr uint8_t kWriteOutputPort = 0xd1;
inline constexpr uint8_t kPulseOutputPortBase = 0xf0;  // 0xF0-0xFF: pulse output port bits 3..0 whose
                                                      // command bit is 0; 0xFE pulses the reset line
inline constexpr uint8_t kPulseResetLine = 0xfe;

// Responses.
inline constexpr uint8_t kSelfTestPassed = 0x55;
inline constexpr uint8_t kInterfaceTestPassed = 0x00;

// State at kvmini's start: what a PC BIOS leaves after POST (there is no
// BIOS): self-test passed, keyboard not inhibited, translation on, keyboard
// interrupt enabled, reset line and A20 high.
inline constexpr uint8_t kInitialStatus = kStatusSys | kStatusUnlocked;             // 0x14
inline constexpr uint8_t kInitialCommandByte = kCmdTranslate | kCmdSys | kCmdKbdInt;  // 0x45
inline constexpr uint8_t kInitialOutputPort = kOutResetLine | kOutA20;                // 0x03

}  // namespace i8042

class I8042 : public BusDevice {
public:
    // Called (without any lock of the controller held) each time the guest
    // asserts the reset line; Linux sends 0xFE up to ten times, so it must be
    // idempotent. It must not call back into the controller.
    using ResetCallback = std::function<void()>;

    struct Stats {
        uint64_t resets = 0;
        uint64_t unknown_commands = 0;     // commands ignored
        uint64_t keyboard_writes = 0;      // bytes for the (absent) keyboard, dropped
        uint64_t wide_accesses = 0;        // accesses wider than a byte (only byte 0 used)
    };

    // `kbd_irq` (ISA IRQ 1) is optional: raised while the output buffer holds
    // a byte and the command byte enables the keyboard interrupt.
    explicit I8042(ResetCallback on_reset, IrqLine kbd_irq = {});

    // BusDevice, with offsets relative to port 0x60: i8042::kDataOffset (0)
    // and i8042::kCommandOffset (4). Use attach() to register both ports.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Registers ports 0x60 and 0x64 (one port each) on the port I/O bus.
    void attach(Bus& pio);

    uint8_t status() const;
    uint8_t command_byte() const;
    Stats stats() const;

private:
    // One of the two single-port ranges, forwarding to the controller.
    class Port : public BusDevice {
    public:
        Port(I8042& owner, uint64_t offset) : owner_(owner), offset_(offset) {}
        void read(uint64_t, std::span<uint8_t> data) override { owner_.read(offset_, data); }
        void write(uint64_t, std::span<const uint8_t> data) override { owner_.write(offset_, data); }

    private:
        I8042& owner_;
        uint64_t offset_;
    };

    enum class Pending { kNone, kCommandByte, kOutputPort };

    // Each returns true if the reset line was pulsed.
    bool handle_command(uint8_t cmd);
    bool handle_data(uint8_t value);
    void put_output(uint8_t value);
    void update_irq();

    mutable std::mutex mutex_;
    ResetCallback on_reset_;
    IrqLine irq_;
    Port data_port_{*this, i8042::kDataOffset};
    Port command_port_{*this, i8042::kCommandOffset};

    uint8_t status_ = i8042::kInitialStatus;
    uint8_t command_byte_ = i8042::kInitialCommandByte;
    uint8_t output_port_ = i8042::kInitialOutputPort;
    uint8_t output_buffer_ = 0;
    Pending pending_ = Pending::kNone;
    bool irq_high_ = false;
    Stats stats_;
};

}  // namespace kvmini
