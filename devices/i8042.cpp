#include "devices/i8042.h"

#include <spdlog/spdlog.h>

namespace kvmini {

using namespace i8042;

I8042::I8042(ResetCallback on_reset, IrqLine kbd_irq) : on_reset_(std::move(on_reset)), irq_(kbd_irq) {}

void I8042::attach(Bus& pio)
{
    pio.add(kDataPort, 1, data_port_, "i8042 data");
    pio.add(kCommandPort, 1, command_port_, "i8042 status/command");
}

void I8042::read(uint64_t offset, std::span<uint8_t> data)
{
    if (data.empty()) return;
    std::lock_guard lock(mutex_);
    if (data.size() != 1) ++stats_.wide_accesses;
    uint8_t value = 0xff;
    if (offset == kDataOffset) {
        // Reading the output buffer empties it; with nothing new the last
        // byte reads again.
        value = output_buffer_;
        status_ &= static_cast<uint8_t>(~(kStatusObf | kStatusAuxObf));
        update_irq();
    } else if (offset == kCommandOffset) {
        value = status_;
    }
    data[0] = value;
    for (size_t i = 1; i < data.size(); ++i) data[i] = 0xff;
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data)
{
    if (data.empty()) return;
    bool reset = false;
    {
        std::lock_guard lock(mutex_);
        if (data.size() != 1) ++stats_.wide_accesses;
        if (offset == kDataOffset) {
            status_ &= static_cast<uint8_t>(~kStatusCommand);
            reset = handle_data(data[0]);
        } else if (offset == kCommandOffset) {
            status_ |= kStatusCommand;
            reset = handle_command(data[0]);
        }
        if (reset) ++stats_.resets;
        update_irq();
    }
    if (reset) {
        spdlog::debug("i8042: guest pulsed the reset line");
        if (on_reset_) on_reset_();
    }
}

bool I8042::handle_command(uint8_t cmd)
{
    pending_ = Pending::kNone;  // a new command cancels one waiting for its data byte
    switch (cmd) {
    case kReadCommandByte:
        put_output(command_byte_);
        return false;
    case kWriteCommandByte:
        pending_ = Pending::kCommandByte;
        return false;
    case kDisableAux:
        command_byte_ |= kCmdAuxDisabled;
        return false;
    case kEnableAux:
        command_byte_ &= static_cast<uint8_t>(~kCmdAuxDisabled);
        return false;
    case kSelfTest:
        status_ |= kStatusSys;
        put_output(kSelfTestPassed);
        return false;
    case kKbdInterfaceTest:
        put_output(kInterfaceTestPassed);
        return false;
    case kDisableKbd:
        command_byte_ |= kCmdKbdDisabled;
        return false;
    case kEnableKbd:
        command_byte_ &= static_cast<uint8_t>(~kCmdKbdDisabled);
        return false;
    case kReadOutputPort:
        put_output(output_port_);
        return false;
    case kWriteOutputPort:
        pending_ = Pending::kOutputPort;
        return false;
    }
    if (cmd >= kPulseOutputPortBase) {
        // Bits 3..0 of the command select the output port lines to pulse low
        // (a 0 bit pulses); only line 0, CPU reset, does anything here.
        return (cmd & kOutResetLine) == 0;
    }
    ++stats_.unknown_commands;
    return false;
}

bool I8042::handle_data(uint8_t value)
{
    const Pending pending = pending_;
    pending_ = Pending::kNone;
    switch (pending) {
    case Pending::kCommandByte:
        command_byte_ = value;
        status_ = static_cast<uint8_t>((status_ & ~kStatusSys) | (value & kCmdSys));
        return false;
    case Pending::kOutputPort:
        // Writing the reset line low resets the CPU; it does not stay low on
        // a real board (the reset restarts the controller's owner), so keep
        // the port's other bits and the line high.
        output_port_ = static_cast<uint8_t>(value | kOutResetLine);
        return (value & kOutResetLine) == 0;
    case Pending::kNone:
        break;
    }
    // A byte for the keyboard, which is not there.
    ++stats_.keyboard_writes;
    return false;
}

void I8042::put_output(uint8_t value)
{
    output_buffer_ = value;
    status_ = static_cast<uint8_t>((status_ | kStatusObf) & ~kStatusAuxObf);
}

void I8042::update_irq()
{
    const bool level = (status_ & kStatusObf) && !(status_ & kStatusAuxObf) && (command_byte_ & kCmdKbdInt);
    if (level == irq_high_) return;
    irq_high_ = level;
    irq_.set_level(level);
}

uint8_t I8042::status() const
{
    std::lock_guard lock(mutex_);
    return status_;
}

uint8_t I8042::command_byte() const
{
    std::lock_guard lock(mutex_);
    return command_byte_;
}

I8042::Stats I8042::stats() const
{
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace kvmini
