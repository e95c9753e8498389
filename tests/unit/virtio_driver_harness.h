// A host-side stand-in for a guest: the machine wiring (buses, a recording
// interrupt sink from tests/unit/fakes.h, PCI host bridge on 0xcf8) and a
// virtio PCI driver that talks to a device only as a guest would:
// configuration cycles through ports 0xcf8/0xcfc, BAR registers through the port and MMIO buses, rings and
// buffers in GuestMemory. Used by the PCI and virtio unit tests.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "devices/bus.h"
#include "devices/le.h"
#include "devices/pci/pci_host_bridge.h"
#include "devices/pci/pci_regs.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtio_spec.h"
#include "irqchip/gsi_layout.h"
#include "tests/unit/fakes.h"
#include "vmm/guest_memory.h"

namespace kvmini::test {

using namespace std::chrono_literals;

// The machine: wired as vmm/ would wire it.
class TestMachine {
public:
    explicit TestMachine(uint64_t ram_bytes = 16ull << 20) : mem(ram_bytes)
    {
        pio.add(pci::kConfigAddressPort, pci::kConfigPortsLen, bridge, "pci-host-bridge");
    }

    GuestMemory mem;
    Bus pio{"pio"};
    Bus mmio{"mmio"};
    RecordingIrqSink irqs;
    PciHostBridge bridge{pio, mmio};

    // What the machine does for each PCI device.
    uint8_t plug(PciDevice& dev, uint8_t slot = 0)
    {
        const uint8_t s = bridge.add_device(dev, slot);
        dev.connect_irqs(irqs.line(gsi::pci_intx_gsi(s, dev.interrupt_pin() - 1)), irqs.msi_sender());
        return s;
    }

    // CPU port and memory accesses.
    uint32_t in(uint16_t port, unsigned size)
    {
        uint8_t b[4] = {};
        pio.read(port, std::span<uint8_t>(b, size));
        return le::load32(b);
    }
    void out(uint16_t port, unsigned size, uint32_t v)
    {
        uint8_t b[4];
        le::store32(b, v);
        pio.write(port, std::span<const uint8_t>(b, size));
    }
    uint64_t mmio_read(uint64_t addr, unsigned size)
    {
        uint8_t b[8] = {};
        mmio.read(addr, std::span<uint8_t>(b, size));
        return le::load64(b);
    }
    void mmio_write(uint64_t addr, unsigned size, uint64_t v)
    {
        uint8_t b[8];
        le::store64(b, v);
        mmio.write(addr, std::span<const uint8_t>(b, size));
    }

    // Configuration mechanism #1, as Linux's pci_conf1_read/write do it.
    static uint32_t config_address(uint8_t bus, uint8_t slot, uint8_t fn, uint32_t off)
    {
        return pci::kConfigAddressEnable | uint32_t{bus} << 16 | uint32_t{slot} << 11 | uint32_t{fn} << 8 |
               (off & 0xfc);
    }
    uint32_t cfg_read(uint8_t slot, uint32_t off, unsigned size, uint8_t bus = 0, uint8_t fn = 0)
    {
        out(pci::kConfigAddressPort, 4, config_address(bus, slot, fn, off));
        return in(static_cast<uint16_t>(pci::kConfigDataPort + (off & 3)), size);
    }
    void cfg_write(uint8_t slot, uint32_t off, unsigned size, uint32_t v, uint8_t bus = 0, uint8_t fn = 0)
    {
        out(pci::kConfigAddressPort, 4, config_address(bus, slot, fn, off));
        out(static_cast<uint16_t>(pci::kConfigDataPort + (off & 3)), size, v);
    }

    // Guest RAM for rings and buffers, from 1 MiB up.
    uint64_t alloc(uint64_t bytes, uint64_t align = 4096)
    {
        next_ = (next_ + align - 1) & ~(align - 1);
        const uint64_t at = next_;
        next_ += bytes;
        if (!mem.contains(at, bytes)) throw std::runtime_error("test guest RAM exhausted");
        return at;
    }

private:
    uint64_t next_ = 1ull << 20;
};

// A buffer of a request, as the driver lays it out.
struct Seg {
    uint64_t gpa;
    uint32_t len;
    bool device_writes;
};

struct UsedElem {
    uint32_t id;
    uint32_t len;
};

// A virtio PCI driver: modern (capabilities, BAR4) or legacy (BAR0 ports).
class VirtioPciDriver {
public:
    enum class Mode { kModern, kLegacy };
    static constexpr uint32_t kMsiAddress = 0xfee0'0000;   // LAPIC 0
    static constexpr uint32_t kMsiVectorBase = 0x40;       // MSI data of vector v: 0x40 + v

    VirtioPciDriver(TestMachine& m, uint8_t slot, Mode mode = Mode::kModern) : m_(m), slot_(slot), mode_(mode)
    {
        find_capabilities();
    }

    TestMachine& machine() { return m_; }
    uint8_t slot() const { return slot_; }
    uint32_t intx_gsi() const { return gsi::pci_intx_gsi(slot_, 0); }

    // --- Discovery --------------------------------------------------------------
    uint64_t bar_address(unsigned bar)
    {
        const uint32_t lo = m_.cfg_read(slot_, pci::kBar0 + 4 * bar, 4);
        if (lo & pci::kBarIoSpace) return lo & ~uint32_t{3};
        uint64_t a = lo & ~uint32_t{0xf};
        if ((lo & 0x6) == pci::kBarMemType64) a |= uint64_t{m_.cfg_read(slot_, pci::kBar0 + 4 * bar + 4, 4)} << 32;
        return a;
    }
    void find_capabilities()
    {
        uint8_t at = static_cast<uint8_t>(m_.cfg_read(slot_, pci::kCapabilitiesPtr, 1));
        for (int guard = 0; at && guard < 48; ++guard) {
            const uint8_t id = static_cast<uint8_t>(m_.cfg_read(slot_, at, 1));
            if (id == pci::kCapIdMsix) {
                msix_cap_ = at;
                const uint32_t table = m_.cfg_read(slot_, at + pci::kMsixTableOffset, 4);
                msix_table_ = bar_address(table & pci::kMsixBirMask) + (table & ~pci::kMsixBirMask);
                const uint32_t pba = m_.cfg_read(slot_, at + pci::kMsixPbaOffset, 4);
                msix_pba_ = bar_address(pba & pci::kMsixBirMask) + (pba & ~pci::kMsixBirMask);
                msix_vectors_ = (m_.cfg_read(slot_, at + pci::kMsixMessageControl, 2) & 0x7ff) + 1;
            } else if (id == pci::kCapIdVendor) {
                const uint8_t type = static_cast<uint8_t>(m_.cfg_read(slot_, at + virtio::kPciCapCfgType, 1));
                const uint8_t bar = static_cast<uint8_t>(m_.cfg_read(slot_, at + virtio::kPciCapBar, 1));
                const uint64_t addr = bar_address(bar) + m_.cfg_read(slot_, at + virtio::kPciCapOffset, 4);
                switch (type) {
                case virtio::kPciCapCommonCfg: common_ = addr; break;
                case virtio::kPciCapNotifyCfg:
                    notify_ = addr;
                    notify_mult_ = m_.cfg_read(slot_, at + virtio::kPciNotifyOffMultiplier, 4);
                    break;
                case virtio::kPciCapIsrCfg: isr_ = addr; break;
                case virtio::kPciCapDeviceCfg: device_cfg_ = addr; break;
                case virtio::kPciCapPciCfg: pci_cfg_cap_ = at; break;
                default: break;
                }
            }
            at = static_cast<uint8_t>(m_.cfg_read(slot_, at + 1, 1));
        }
        legacy_port_ = static_cast<uint16_t>(bar_address(0));
    }
    bool has_modern() const { return common_ && notify_ && isr_ && device_cfg_; }
    uint64_t common() const { return common_; }

    // --- Register access -----------------------------------------------------------
    uint64_t common_read(uint32_t off, unsigned size) { return m_.mmio_read(common_ + off, size); }
    void common_write(uint32_t off, unsigned size, uint64_t v) { m_.mmio_write(common_ + off, size, v); }
    uint32_t legacy_read(uint32_t off, unsigned size) { return m_.in(static_cast<uint16_t>(legacy_port_ + off), size); }
    void legacy_write(uint32_t off, unsigned size, uint32_t v)
    {
        m_.out(static_cast<uint16_t>(legacy_port_ + off), size, v);
    }

    // BAR access through the PCI configuration access capability (4.1.4.7).
    bool has_pci_cfg_cap() const { return pci_cfg_cap_ != 0; }
    uint32_t pci_cfg_read(uint8_t bar, uint32_t offset, uint32_t len)
    {
        m_.cfg_write(slot_, pci_cfg_cap_ + virtio::kPciCapBar, 1, bar);
        m_.cfg_write(slot_, pci_cfg_cap_ + virtio::kPciCapOffset, 4, offset);
        m_.cfg_write(slot_, pci_cfg_cap_ + virtio::kPciCapLength, 4, len);
        return m_.cfg_read(slot_, pci_cfg_cap_ + virtio::kPciCfgCapData, 4);
    }
    void pci_cfg_write(uint8_t bar, uint32_t offset, uint32_t len, uint32_t value)
    {
        m_.cfg_write(slot_, pci_cfg_cap_ + virtio::kPciCapBar, 1, bar);
        m_.cfg_write(slot_, pci_cfg_cap_ + virtio::kPciCapOffset, 4, offset);
        m_.cfg_write(slot_, pci_cfg_cap_ + virtio::kPciCapLength, 4, len);
        m_.cfg_write(slot_, pci_cfg_cap_ + virtio::kPciCfgCapData, 4, value);
    }

    uint8_t status()
    {
        return mode_ == Mode::kModern ? static_cast<uint8_t>(common_read(virtio::common::kDeviceStatus, 1))
                                      : static_cast<uint8_t>(legacy_read(virtio::legacy::kDeviceStatus, 1));
    }
    void set_status(uint8_t s)
    {
        if (mode_ == Mode::kModern)
            common_write(virtio::common::kDeviceStatus, 1, s);
        else
            legacy_write(virtio::legacy::kDeviceStatus, 1, s);
    }
    uint8_t read_isr()
    {
        return mode_ == Mode::kModern ? static_cast<uint8_t>(m_.mmio_read(isr_, 1))
                                      : static_cast<uint8_t>(legacy_read(virtio::legacy::kIsrStatus, 1));
    }
    uint64_t config_read(uint32_t off, unsigned size)
    {
        if (mode_ == Mode::kModern) return m_.mmio_read(device_cfg_ + off, size);
        const uint32_t base = msix_enabled_ ? virtio::legacy::kConfigMsix : virtio::legacy::kConfigNoMsix;
        uint8_t b[8] = {};
        for (unsigned i = 0; i < size && i < 8; ++i) b[i] = static_cast<uint8_t>(legacy_read(base + off + i, 1));
        return le::load64(b);
    }

    uint64_t device_features()
    {
        if (mode_ == Mode::kLegacy) return legacy_read(virtio::legacy::kDeviceFeatures, 4);
        common_write(virtio::common::kDeviceFeatureSelect, 4, 0);
        uint64_t f = common_read(virtio::common::kDeviceFeature, 4);
        common_write(virtio::common::kDeviceFeatureSelect, 4, 1);
        return f | common_read(virtio::common::kDeviceFeature, 4) << 32;
    }

    // Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (modern). Returns
    // whether the device accepted the features.
    bool negotiate(uint64_t wanted)
    {
        set_status(0);
        if (status() != 0) return false;
        set_status(virtio::kStatusAcknowledge);
        set_status(virtio::kStatusAcknowledge | virtio::kStatusDriver);
        features_ = wanted & device_features();
        if (mode_ == Mode::kLegacy) {
            legacy_write(virtio::legacy::kGuestFeatures, 4, static_cast<uint32_t>(features_));
            return true;
        }
        common_write(virtio::common::kDriverFeatureSelect, 4, 0);
        common_write(virtio::common::kDriverFeature, 4, features_ & 0xffff'ffff);
        common_write(virtio::common::kDriverFeatureSelect, 4, 1);
        common_write(virtio::common::kDriverFeature, 4, features_ >> 32);
        set_status(virtio::kStatusAcknowledge | virtio::kStatusDriver | virtio::kStatusFeaturesOk);
        return status() & virtio::kStatusFeaturesOk;
    }
    uint64_t features() const { return features_; }
    void driver_ok() { set_status(status() | virtio::kStatusDriverOk); }

    // --- MSI-X -----------------------------------------------------------------------
    // Programs every vector (address kMsiAddress, data kMsiVectorBase + v),
    // unmasks them and enables MSI-X.
    void enable_msix()
    {
        for (unsigned v = 0; v < msix_vectors_; ++v) {
            const uint64_t e = msix_table_ + 16ull * v;
            m_.mmio_write(e + pci::kMsixEntryAddrLo, 4, kMsiAddress);
            m_.mmio_write(e + pci::kMsixEntryAddrHi, 4, 0);
            m_.mmio_write(e + pci::kMsixEntryData, 4, kMsiVectorBase + v);
            m_.mmio_write(e + pci::kMsixEntryVectorControl, 4, 0);
        }
        const uint32_t ctl = m_.cfg_read(slot_, msix_cap_ + pci::kMsixMessageControl, 2);
        m_.cfg_write(slot_, msix_cap_ + pci::kMsixMessageControl, 2, ctl | pci::kMsixControlEnable);
        msix_enabled_ = true;
    }
    void mask_vector(unsigned v, bool masked)
    {
        m_.mmio_write(msix_table_ + 16ull * v + pci::kMsixEntryVectorControl, 4, masked ? 1 : 0);
    }
    uint64_t pba() { return m_.mmio_read(msix_pba_, 8); }
    void set_config_vector(uint16_t v)
    {
        if (mode_ == Mode::kModern)
            common_write(virtio::common::kConfigMsixVector, 2, v);
        else
            legacy_write(virtio::legacy::kConfigMsixVector, 2, v);
    }
    unsigned msix_vectors() const { return msix_vectors_; }

    // --- Queues --------------------------------------------------------------------------
    struct Queue {
        uint16_t size = 0;
        uint64_t desc = 0, avail = 0, used = 0;
        uint16_t avail_idx = 0;
        uint16_t last_used = 0;
        std::vector<uint16_t> free;
    };

    // Sets up queue `q` with `size` entries (modern) or the device's fixed
    // size (legacy); msix_vector as given (kNoVector for none). Returns
    // whether the device enabled it.
    bool setup_queue(unsigned q, uint16_t size, uint16_t msix_vector = virtio::kNoVector)
    {
        if (queues_.size() <= q) queues_.resize(q + 1);
        Queue& Q = queues_[q];
        if (mode_ == Mode::kLegacy) {
            legacy_write(virtio::legacy::kQueueSelect, 2, q);
            size = static_cast<uint16_t>(legacy_read(virtio::legacy::kQueueSize, 2));
            const uint64_t desc_bytes = 16ull * size;
            const uint64_t used_off = (desc_bytes + virtio::avail_bytes(size) + 4095) & ~uint64_t{4095};
            const uint64_t base = m_.alloc(used_off + virtio::used_bytes(size), 4096);
            Q = Queue{size, base, base + desc_bytes, base + used_off, 0, 0, {}};
            if (msix_enabled_) legacy_write(virtio::legacy::kQueueMsixVector, 2, msix_vector);
            legacy_write(virtio::legacy::kQueueAddress, 4, static_cast<uint32_t>(base >> 12));
        } else {
            common_write(virtio::common::kQueueSelect, 2, q);
            common_write(virtio::common::kQueueSize, 2, size);
            Q = Queue{size, m_.alloc(16ull * size, 16), m_.alloc(virtio::avail_bytes(size) + 2, 2),
                      m_.alloc(virtio::used_bytes(size) + 2, 4), 0, 0, {}};
            common_write(virtio::common::kQueueDesc, 4, Q.desc & 0xffff'ffff);
            common_write(virtio::common::kQueueDesc + 4, 4, Q.desc >> 32);
            common_write(virtio::common::kQueueDriver, 8, Q.avail);
            common_write(virtio::common::kQueueDevice, 8, Q.used);
            common_write(virtio::common::kQueueMsixVector, 2, msix_vector);
            common_write(virtio::common::kQueueEnable, 2, 1);
        }
        for (uint16_t i = 0; i < Q.size; ++i) Q.free.push_back(static_cast<uint16_t>(Q.size - 1 - i));
        if (mode_ == Mode::kLegacy) return legacy_read(virtio::legacy::kQueueAddress, 4) != 0 && !broken();
        return common_read(virtio::common::kQueueEnable, 2) == 1;
    }
    Queue& queue(unsigned q) { return queues_.at(q); }
    uint16_t queue_msix_vector(unsigned q)
    {
        common_write(virtio::common::kQueueSelect, 2, q);
        return static_cast<uint16_t>(common_read(virtio::common::kQueueMsixVector, 2));
    }

    bool broken() { return status() & virtio::kStatusDeviceNeedsReset; }

    // Writes a raw descriptor (for hostile tests).
    void write_desc(unsigned q, uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
    {
        const virtio::VirtqDesc d{addr, len, flags, next};
        m_.mem.write_obj(queues_.at(q).desc + 16ull * index, d);
    }
    // The rings' indices and event fields are shared with the device's I/O
    // thread: single aligned 16-bit accesses, as a guest's are; the release
    // store and the acquire load are the driver's memory barriers (2.7.13),
    // and let ThreadSanitizer see them.
    uint16_t load_shared(uint64_t gpa)
    {
        return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(shared_ptr(gpa))).load(std::memory_order_acquire);
    }
    void store_shared(uint64_t gpa, uint16_t v)
    {
        std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(shared_ptr(gpa))).store(v, std::memory_order_release);
    }
    // Publishes `head` in the available ring (no notify).
    void publish(unsigned q, uint16_t head)
    {
        Queue& Q = queues_.at(q);
        m_.mem.write_obj<uint16_t>(Q.avail + virtio::kAvailRing + 2ull * (Q.avail_idx % Q.size), head);
        ++Q.avail_idx;
        store_shared(Q.avail + virtio::kAvailIdx, Q.avail_idx);
    }
    void set_avail_idx(unsigned q, uint16_t idx)
    {
        queues_.at(q).avail_idx = idx;
        store_shared(queues_.at(q).avail + virtio::kAvailIdx, idx);
    }
    void notify(unsigned q)
    {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (mode_ == Mode::kModern) {
            const uint16_t off = static_cast<uint16_t>(
                (common_write(virtio::common::kQueueSelect, 2, q), common_read(virtio::common::kQueueNotifyOff, 2)));
            m_.mmio_write(notify_ + uint64_t{off} * notify_mult_, 2, q);
        } else {
            legacy_write(virtio::legacy::kQueueNotify, 2, q);
        }
    }
    // Builds a chain from `segs` (in the descriptor table, or in an indirect
    // table when `indirect`), publishes and notifies. Returns the head.
    uint16_t submit(unsigned q, const std::vector<Seg>& segs, bool indirect = false)
    {
        Queue& Q = queues_.at(q);
        uint16_t head;
        if (indirect) {
            const uint64_t table = m_.alloc(16 * segs.size(), 16);
            for (size_t i = 0; i < segs.size(); ++i) {
                const bool last = i + 1 == segs.size();
                const virtio::VirtqDesc d{segs[i].gpa, segs[i].len,
                                          static_cast<uint16_t>((segs[i].device_writes ? virtio::kDescFWrite : 0) |
                                                                (last ? 0 : virtio::kDescFNext)),
                                          static_cast<uint16_t>(last ? 0 : i + 1)};
                m_.mem.write_obj(table + 16 * i, d);
            }
            head = take_desc(Q);
            write_desc(q, head, table, static_cast<uint32_t>(16 * segs.size()), virtio::kDescFIndirect, 0);
        } else {
            std::vector<uint16_t> ids;
            for (size_t i = 0; i < segs.size(); ++i) ids.push_back(take_desc(Q));
            for (size_t i = 0; i < segs.size(); ++i) {
                const bool last = i + 1 == segs.size();
                write_desc(q, ids[i], segs[i].gpa, segs[i].len,
                           static_cast<uint16_t>((segs[i].device_writes ? virtio::kDescFWrite : 0) |
                                                 (last ? 0 : virtio::kDescFNext)),
                           last ? 0 : ids[i + 1]);
            }
            head = ids[0];
            chains_[head] = ids;
        }
        const uint16_t old_idx = Q.avail_idx;
        publish(q, head);
        // With EVENT_IDX, kick only if the device asked for it (2.7.10),
        // as Linux's virtqueue_kick_prepare does.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (!(features_ & virtio::feature(virtio::kFRingEventIdx)) ||
            virtio::need_event(avail_event(q), Q.avail_idx, old_idx))
            notify(q);
        return head;
    }
    // The next used element, if the device has returned one (no waiting).
    std::optional<UsedElem> poll_used(unsigned q)
    {
        Queue& Q = queues_.at(q);
        const uint16_t idx = load_shared(Q.used + virtio::kUsedIdx);
        if (idx == Q.last_used) return std::nullopt;
        const uint64_t e = Q.used + virtio::kUsedRing + 8ull * (Q.last_used % Q.size);
        UsedElem u{m_.mem.read_obj<uint32_t>(e).value(), m_.mem.read_obj<uint32_t>(e + 4).value()};
        ++Q.last_used;
        release(Q, static_cast<uint16_t>(u.id));
        return u;
    }
    // Polls the used ring for the next element.
    std::optional<UsedElem> wait_used(unsigned q, std::chrono::milliseconds timeout = 5s)
    {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto u = poll_used(q)) return u;
            if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
            std::this_thread::sleep_for(200us);
        }
    }
    uint16_t used_idx(unsigned q) { return load_shared(queues_.at(q).used + virtio::kUsedIdx); }
    // EVENT_IDX: the used_event the driver publishes in the available ring.
    void set_used_event(unsigned q, uint16_t v)
    {
        Queue& Q = queues_.at(q);
        store_shared(Q.avail + virtio::kAvailRing + 2ull * Q.size, v);
    }
    uint16_t avail_event(unsigned q)
    {
        Queue& Q = queues_.at(q);
        return load_shared(Q.used + virtio::kUsedRing + 8ull * Q.size);
    }

    // --- virtio-blk requests ------------------------------------------------------------
    struct BlkResult {
        bool completed = false;
        uint8_t status = 0xff;
        uint32_t used_len = 0;
    };
    // One request: header, then `data` segments, then the status byte.
    BlkResult blk(uint32_t type, uint64_t sector, const std::vector<Seg>& data, bool indirect = false)
    {
        const uint64_t hdr = m_.alloc(16, 16);
        const uint64_t st = m_.alloc(1, 1);
        uint8_t h[16] = {};   // virtio_blk_req: type, reserved, sector
        le::store32(h, type);
        le::store64(h + 8, sector);
        m_.mem.write(hdr, h, sizeof(h));
        m_.mem.write_obj<uint8_t>(st, 0xff);
        std::vector<Seg> segs{{hdr, 16, false}};
        segs.insert(segs.end(), data.begin(), data.end());
        segs.push_back({st, 1, true});
        submit(0, segs, indirect);
        BlkResult r;
        const auto u = wait_used(0);
        if (!u) return r;
        r.completed = true;
        r.used_len = u->len;
        r.status = m_.mem.read_obj<uint8_t>(st).value();
        return r;
    }

    // Full bring-up of a virtio-blk device: features, queue 0, MSI-X (or not), DRIVER_OK.
    bool init_blk(bool msix, uint64_t extra_wanted = 0, uint16_t queue_size = 128)
    {
        const uint64_t wanted = virtio::feature(virtio::kFVersion1) | virtio::feature(virtio::blk::kFFlush) |
                                virtio::feature(virtio::blk::kFBlkSize) | virtio::feature(virtio::blk::kFSegMax) |
                                virtio::feature(virtio::blk::kFSizeMax) | virtio::feature(virtio::blk::kFRo) |
                                virtio::feature(virtio::blk::kFDiscard) |
                                virtio::feature(virtio::blk::kFWriteZeroes) | extra_wanted;
        if (!negotiate(wanted)) return false;
        if (msix) {
            enable_msix();
            set_config_vector(0);
        }
        if (!setup_queue(0, queue_size, msix ? 1 : virtio::kNoVector)) return false;
        driver_ok();
        return status() & virtio::kStatusDriverOk;
    }

private:
    uint8_t* shared_ptr(uint64_t gpa)
    {
        uint8_t* p = m_.mem.host_ptr(gpa, 2);
        if (!p || gpa % 2) throw std::runtime_error("test driver: ring field outside RAM or unaligned");
        return p;
    }
    static uint16_t take_desc(Queue& Q)
    {
        if (Q.free.empty()) throw std::runtime_error("test driver: descriptor table full");
        const uint16_t d = Q.free.back();
        Q.free.pop_back();
        return d;
    }
    void release(Queue& Q, uint16_t head)
    {
        auto it = chains_.find(head);
        if (it != chains_.end()) {
            for (uint16_t d : it->second) Q.free.push_back(d);
            chains_.erase(it);
        } else if (head < Q.size) {
            Q.free.push_back(head);   // an indirect chain's single descriptor
        }
    }

    TestMachine& m_;
    uint8_t slot_;
    Mode mode_;
    uint64_t common_ = 0, notify_ = 0, isr_ = 0, device_cfg_ = 0;
    uint32_t notify_mult_ = 0;
    uint16_t legacy_port_ = 0;
    uint8_t msix_cap_ = 0;
    uint8_t pci_cfg_cap_ = 0;
    uint64_t msix_table_ = 0, msix_pba_ = 0;
    unsigned msix_vectors_ = 0;
    bool msix_enabled_ = false;
    uint64_t features_ = 0;
    std::vector<Queue> queues_;
    std::map<uint16_t, std::vector<uint16_t>> chains_;
};

}  // namespace kvmini::test
