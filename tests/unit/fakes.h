// The unit tests' one set of fakes for interrupts, so each test says what it
// checks and not how to record it:
//   RecordingIrqSink  what a device is given (devices/irq_line.h): lines and an
//                     MSI sender. Device tests use it instead of an irqchip.
//   RecordingIrqChip  an IrqChip backend, for the routing layer's own tests.
// Both keep the same record (IrqRecord): each change of a GSI's level in order,
// the level and the rising edges per GSI, every MSI. Thread-safe, with waits,
// for devices that interrupt from their own threads (virtio-blk's I/O thread).
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "devices/irq_line.h"
#include "irqchip/irqchip.h"

namespace kvmini::test {

using namespace std::chrono_literals;

using GsiEvent = std::pair<uint32_t, bool>;  // (GSI, new level)

class IrqRecord {
public:
    // Every change of a GSI's level, oldest first.
    std::vector<GsiEvent> events() const
    {
        std::lock_guard lock(mutex_);
        return events_;
    }
    void clear_events()
    {
        std::lock_guard lock(mutex_);
        events_.clear();
    }
    bool level(uint32_t gsi) const
    {
        std::lock_guard lock(mutex_);
        return levels_.at(gsi);
    }
    uint64_t raises(uint32_t gsi) const
    {
        std::lock_guard lock(mutex_);
        return raises_.at(gsi);
    }
    std::vector<MsiMessage> msis() const
    {
        std::lock_guard lock(mutex_);
        return msis_;
    }
    size_t msi_total() const
    {
        std::lock_guard lock(mutex_);
        return msis_.size();
    }
    // MSIs with this data (vector) so far.
    size_t msi_count(uint32_t data) const
    {
        std::lock_guard lock(mutex_);
        return count_locked(data);
    }
    bool wait_msi_count(uint32_t data, size_t count, std::chrono::milliseconds timeout = 5s)
    {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] { return count_locked(data) >= count; });
    }
    bool wait_level(uint32_t gsi, bool level, std::chrono::milliseconds timeout = 5s)
    {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, timeout, [&] { return levels_.at(gsi) == level; });
    }

protected:
    void record_level(uint32_t gsi, bool level)
    {
        std::lock_guard lock(mutex_);
        record_level_locked(gsi, level);
    }
    void record_level_locked(uint32_t gsi, bool level)
    {
        events_.emplace_back(gsi, level);
        if (level && !levels_.at(gsi)) ++raises_.at(gsi);
        levels_.at(gsi) = level;
        cv_.notify_all();
    }
    void record_msi(const MsiMessage& msg)
    {
        std::lock_guard lock(mutex_);
        msis_.push_back(msg);
        cv_.notify_all();
    }
    mutable std::mutex mutex_;

private:
    size_t count_locked(uint32_t data) const
    {
        size_t n = 0;
        for (const MsiMessage& m : msis_) n += m.data == data;
        return n;
    }

    std::condition_variable cv_;
    std::vector<GsiEvent> events_;
    std::array<bool, kGsiCount> levels_{};
    std::array<uint64_t, kGsiCount> raises_{};
    std::vector<MsiMessage> msis_;
};

// What a device sees. Each line() is a source of its own; a GSI is high while
// any of its sources is, and only changes of that are recorded (as the routing
// layer passes them on), so a device that repeats a level records nothing new.
class RecordingIrqSink : public IrqSink, public IrqRecord {
public:
    IrqLine line(uint32_t gsi) override
    {
        std::lock_guard lock(mutex_);
        return IrqLine(this, gsi, sources_.at(gsi)++);
    }
    MsiSender msi_sender() override { return MsiSender(this); }
    void set_level(uint32_t gsi, uint32_t source, bool level) override
    {
        std::lock_guard lock(mutex_);
        uint64_t& sources = asserted_.at(gsi);
        const bool was = sources != 0;
        sources = level ? sources | (uint64_t{1} << source) : sources & ~(uint64_t{1} << source);
        if (was != (sources != 0)) record_level_locked(gsi, sources != 0);
    }
    void send_msi(const MsiMessage& msg) override { record_msi(msg); }

private:
    std::array<uint64_t, kGsiCount> asserted_{};  // bit per source
    std::array<uint32_t, kGsiCount> sources_{};   // sources handed out
};

// An irqchip backend that only records what the routing layer hands it.
class RecordingIrqChip : public IrqChip, public IrqRecord {
public:
    std::string mode_name() const override { return "recording"; }
    void create(Vm&) override {}
    void set_gsi_level(uint32_t gsi, bool level) override { record_level(gsi, level); }
    void send_msi(const MsiMessage& msg) override { record_msi(msg); }
    IrqChipStats stats() const override
    {
        IrqChipStats s;
        for (uint32_t gsi = 0; gsi < kGsiCount; ++gsi) s.gsi_raises += raises(gsi);
        s.msis = msi_total();
        return s;
    }
};

}  // namespace kvmini::test
