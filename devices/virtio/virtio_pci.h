// The virtio PCI transport (virtio 1.2 section 4.1) around a VirtioDevice.
//
// BARs:
//   BAR0  I/O, legacy (0.9.5) registers + device config (transitional only)
//   BAR1  32-bit memory, MSI-X table and PBA (config vector 0.., one per queue)
//   BAR4  64-bit memory, the modern structures:
//           0x0000 common cfg, 0x1000 ISR, 0x2000 device cfg, 0x3000 notify
//           (queue q notifies at 0x3000 + q * kNotifyOffMultiplier)
// plus the PCI configuration access capability (a window onto the BARs
// through config space, for firmware).
// A transitional device (the default) has PCI device ID 0x1000 + n (0x1001 for
// block), revision 0, and both interfaces; a modern-only one 0x1040 + type,
// revision 1.
//
// Interrupts: with MSI-X enabled, the queue's / config's vector (none if
// NO_VECTOR); otherwise the ISR bits and the INTx level, lowered when the
// driver reads ISR.
//
// Notifications: each queue has an eventfd; the I/O thread waits on them and
// runs the device. A notify-register write through the Bus signals the same
// eventfd, so a machine may also hand the addresses to KVM ioeventfds:
// set_notify_observer() reports every notify address as BARs appear, move
// and disappear (modern: MMIO, 2 bytes, no datamatch; legacy: port, 2 bytes,
// datamatch = queue index).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "devices/pci/pci_device.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/virtio_spec.h"
#include "devices/virtio/virtqueue.h"
#include "vmm/guest_memory.h"
#include "vmm/event_fd.h"

namespace kvmini {

struct VirtioPciOptions {
    bool transitional = true;   // also offer the legacy I/O BAR (older guest kernels)
};

// A place the guest writes to notify a queue.
struct VirtioNotifyRegion {
    uint16_t queue = 0;
    bool pio = false;                       // port I/O (legacy) or MMIO (modern)
    uint64_t addr = 0;
    uint32_t len = 2;
    std::optional<uint64_t> datamatch;      // value written, when the address is shared
    int eventfd = -1;
    bool operator==(const VirtioNotifyRegion&) const = default;
};

class VirtioPciTransport : public PciDevice {
public:
    static constexpr unsigned kLegacyBar = 0;
    static constexpr unsigned kMsixBar = 1;
    static constexpr unsigned kModernBar = 4;
    static constexpr uint64_t kModernBarSize = 0x4000;
    static constexpr uint64_t kCommonOffset = 0x0000;
    static constexpr uint64_t kIsrOffset = 0x1000;
    static constexpr uint64_t kDeviceCfgOffset = 0x2000;
    static constexpr uint64_t kNotifyOffset = 0x3000;
    static constexpr uint64_t kRegionSize = 0x1000;
    static constexpr uint32_t kNotifyOffMultiplier = 4;

    // Starts the I/O thread. Throws Error if an eventfd cannot be made.
    VirtioPciTransport(GuestMemory& mem, std::unique_ptr<VirtioDevice> device, VirtioPciOptions options = {});
    ~VirtioPciTransport() override;

    VirtioDevice& device() { return *device_; }
    unsigned num_queues() const { return static_cast<unsigned>(queues_.size()); }

    // The eventfd that wakes the I/O thread for `queue` (write 8 bytes of 1 to
    // notify); -1 for no such queue.
    int notify_eventfd(uint16_t queue) const;
    // Called with every notify region added (true) or removed (false); on
    // being set, once for each current region. Runs with the PCI config lock
    // held: must not access this device.
    using NotifyObserver = std::function<void(const VirtioNotifyRegion&, bool added)>;
    void set_notify_observer(NotifyObserver observer);
    std::vector<VirtioNotifyRegion> notify_regions() const;

    uint8_t device_status() const;
    struct Stats {
        uint64_t msix_interrupts = 0;   // MSI-X messages requested (sent or left pending)
        uint64_t intx_interrupts = 0;   // ISR raises
        uint64_t needs_reset = 0;       // times the device was marked DEVICE_NEEDS_RESET
        uint64_t requests = 0;          // chains processed
    };
    Stats stats() const;

protected:
    void bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data) override;
    void bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data) override;
    void bar_remapped(unsigned bar, std::optional<uint64_t> address) override;
    uint32_t config_window_read(uint32_t offset, unsigned size) override;
    void config_window_write(uint32_t offset, unsigned size, uint32_t value) override;

private:
    struct QueueState {
        explicit QueueState(GuestMemory& mem, uint16_t max) : vq(mem, max) {}
        VirtQueue vq;
        uint16_t msix_vector = virtio::kNoVector;
        uint32_t legacy_pfn = 0;
        EventFd eventfd{"virtio queue"};   // the driver's notifications
    };

    uint64_t offered_features() const;
    void common_read(uint64_t offset, std::span<uint8_t> data);
    void common_write(uint64_t offset, std::span<const uint8_t> data);
    void legacy_read(uint64_t offset, std::span<uint8_t> data);
    void legacy_write(uint64_t offset, std::span<const uint8_t> data);
    void device_cfg_read(uint64_t offset, std::span<uint8_t> data);
    void device_cfg_write(uint64_t offset, std::span<const uint8_t> data);
    void write_status_locked(uint8_t value, bool legacy);
    void reset_locked();
    void enable_queue_locked(unsigned q);
    void set_legacy_pfn_locked(unsigned q, uint32_t pfn);
    void mark_broken_locked(const std::string& why);
    void signal_queue_locked(unsigned q);
    void signal_config_locked();
    void raise_isr(uint8_t bits);
    uint8_t read_isr();
    void notify(unsigned q);
    void kick_all();
    void io_loop(std::stop_token stop);
    void process_queue(unsigned q);
    std::vector<VirtioNotifyRegion> regions_for(unsigned bar, uint64_t base) const;

    GuestMemory& mem_;
    std::unique_ptr<VirtioDevice> device_;
    const VirtioPciOptions options_;

    // Transport state and the queues. Held by the I/O thread while it
    // processes a queue. Order: mutex_, then isr_mutex_, then PciDevice's.
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<QueueState>> queues_;
    uint8_t status_ = 0;
    uint32_t device_feature_select_ = 0;
    uint32_t driver_feature_select_ = 0;
    uint64_t driver_features_ = 0;
    uint16_t queue_select_ = 0;
    uint16_t config_vector_ = virtio::kNoVector;
    VirtqChain chain_;   // scratch, reused by the I/O thread

    // 4.1.4.7 PCI configuration access capability: where it is, and its
    // pci_cfg_data bytes.
    uint8_t pci_cfg_cap_ = 0;
    std::mutex pci_cfg_mutex_;
    std::array<uint8_t, 4> pci_cfg_data_{};

    std::mutex isr_mutex_;
    uint8_t isr_ = 0;

    mutable std::mutex notify_mutex_;   // leaf
    std::array<std::optional<uint64_t>, pci::kNumBars> bar_addr_{};
    NotifyObserver observer_;

    std::atomic<uint64_t> msix_interrupts_{0}, intx_interrupts_{0}, needs_reset_{0}, requests_{0};

    EventFd stop_{"virtio"};
    std::jthread io_thread_;   // last: started after, joined before, everything above
};

}  // namespace kvmini
