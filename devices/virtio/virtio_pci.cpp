#include "devices/virtio/virtio_pci.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include <spdlog/spdlog.h>

#include "devices/le.h"
#include "devices/virtio/virtio_spec.h"
#include "vmm/error.h"

namespace kvmini {

using namespace virtio;

namespace {

// 4.1.2.3 "Legacy Interfaces: A Note on PCI Device Discovery": transitional
// device IDs by virtio device type; 0 where there is none.
uint16_t transitional_id(uint16_t type)
{
    switch (type) {
    case 1: return 0x1000;   // network
    case 2: return kPciTransitionalBlk;
    case 3: return 0x1003;   // console
    case 4: return 0x1005;   // entropy
    case 5: return 0x1002;   // balloon
    case 8: return 0x1004;   // SCSI host
    case 9: return 0x1009;   // 9P transport
    default: return 0;
    }
}

PciIds ids_for(const VirtioDevice& dev, const VirtioPciOptions& opts)
{
    const uint16_t type = dev.device_type();
    const bool transitional = opts.transitional && transitional_id(type);
    PciIds ids;
    ids.vendor = kPciVendor;
    ids.device = transitional ? transitional_id(type) : static_cast<uint16_t>(kPciModernDeviceBase + type);
    ids.revision = transitional ? kPciTransitionalRevision : kPciModernRevision;
    ids.subsystem_vendor = kPciVendor;
    ids.subsystem = type;   // transitional devices: the virtio device type
    ids.class_code = type == 2 ? 0x01'00'00 : 0xff'00'00;   // mass storage for block, else "other"
    return ids;
}

}  // namespace

VirtioPciTransport::VirtioPciTransport(GuestMemory& mem, std::unique_ptr<VirtioDevice> device,
                                       VirtioPciOptions options)
    : PciDevice(ids_for(*device, options), device->name()), mem_(mem), device_(std::move(device)),
      options_(options)
{
    const unsigned nq = device_->num_queues();
    const bool transitional = options_.transitional && transitional_id(device_->device_type());
    if (transitional) {
        const uint64_t size = std::bit_ceil(uint64_t{legacy::kConfigMsix} + device_->config_size());
        if (size > 256) throw Error(name() + ": device configuration too large for the legacy I/O BAR");
        declare_bar(kLegacyBar, PciBarKind::kIo, std::max<uint64_t>(size, 32));
    }
    add_msix(nq + 1, kMsixBar);
    declare_bar(kModernBar, PciBarKind::kMem64, kModernBarSize);

    // 4.1.4 virtio_pci_cap bodies (after cap_vndr and cap_next).
    auto add_cap = [&](uint8_t type, uint64_t offset, uint32_t length, bool notify) {
        std::vector<uint8_t> body(notify ? kPciNotifyCapLen - 2 : kPciCapLen - 2, 0);
        body[0] = notify ? kPciNotifyCapLen : kPciCapLen;   // cap_len
        body[kPciCapCfgType - 2] = type;
        body[kPciCapBar - 2] = kModernBar;
        le::store_at(body, kPciCapOffset - 2, 4, offset);
        le::store_at(body, kPciCapLength - 2, 4, length);
        if (notify) le::store_at(body, kPciNotifyOffMultiplier - 2, 4, kNotifyOffMultiplier);
        add_capability(pci::kCapIdVendor, body);
    };
    add_cap(kPciCapCommonCfg, kCommonOffset, common::kSize, false);
    add_cap(kPciCapNotifyCfg, kNotifyOffset, nq * kNotifyOffMultiplier, true);
    add_cap(kPciCapIsrCfg, kIsrOffset, 1, false);
    add_cap(kPciCapDeviceCfg, kDeviceCfgOffset, device_->config_size(), false);
    {
        // 4.1.4.7: bar, offset and length are the driver's to set.
        std::vector<uint8_t> body(kPciCfgCapLen - 2, 0), writable(kPciCfgCapLen - 2, 0);
        body[0] = kPciCfgCapLen;
        body[kPciCapCfgType - 2] = kPciCapPciCfg;
        writable[kPciCapBar - 2] = 0x07;
        for (unsigned i = 0; i < 8; ++i) writable[kPciCapOffset - 2 + i] = 0xff;   // offset, length
        pci_cfg_cap_ = add_capability(pci::kCapIdVendor, body, writable);
        set_config_window(static_cast<uint8_t>(pci_cfg_cap_ + kPciCfgCapData), 4);
    }
    set_interrupt_pin(1);   // INTA#

    for (unsigned q = 0; q < nq; ++q) {
        queues_.push_back(std::make_unique<QueueState>(mem_, device_->queue_max_size(q)));
    }
    io_thread_ = std::jthread([this](std::stop_token st) { io_loop(st); });
}

VirtioPciTransport::~VirtioPciTransport()
{
    detach_from_buses();
    io_thread_.request_stop();
    stop_.signal();
    if (io_thread_.joinable()) io_thread_.join();
}

uint64_t VirtioPciTransport::offered_features() const
{
    return device_->features() | feature(kFVersion1) | feature(kFRingIndirectDesc) | feature(kFRingEventIdx);
}

int VirtioPciTransport::notify_eventfd(uint16_t queue) const
{
    return queue < queues_.size() ? queues_[queue]->eventfd.fd() : -1;
}

uint8_t VirtioPciTransport::device_status() const
{
    std::lock_guard lock(mutex_);
    return status_;
}

VirtioPciTransport::Stats VirtioPciTransport::stats() const
{
    return Stats{msix_interrupts_.load(), intx_interrupts_.load(), needs_reset_.load(), requests_.load()};
}

// --- BAR dispatch ------------------------------------------------------------

void VirtioPciTransport::bar_read(unsigned bar, uint64_t offset, std::span<uint8_t> data)
{
    std::memset(data.data(), 0, data.size());
    if (bar == kLegacyBar && bar_size(kLegacyBar)) return legacy_read(offset, data);
    if (bar != kModernBar) return;
    const uint64_t region = offset / kRegionSize * kRegionSize, off = offset - region;
    if (off + data.size() > kRegionSize) return;
    switch (region) {
    case kCommonOffset: return common_read(off, data);
    case kIsrOffset:
        if (off == 0) data[0] = read_isr();
        return;
    case kDeviceCfgOffset: return device_cfg_read(off, data);
    default: return;   // notify: reads as 0
    }
}

void VirtioPciTransport::bar_write(unsigned bar, uint64_t offset, std::span<const uint8_t> data)
{
    if (bar == kLegacyBar && bar_size(kLegacyBar)) return legacy_write(offset, data);
    if (bar != kModernBar) return;
    const uint64_t region = offset / kRegionSize * kRegionSize, off = offset - region;
    if (off + data.size() > kRegionSize) return;
    switch (region) {
    case kCommonOffset: return common_write(off, data);
    case kDeviceCfgOffset: return device_cfg_write(off, data);
    case kNotifyOffset:
        // 4.1.4.4: queue q at q * notify_off_multiplier (queue_notify_off = q).
        if (off % kNotifyOffMultiplier == 0) notify(static_cast<unsigned>(off / kNotifyOffMultiplier));
        return;
    default: return;   // ISR is read-only
    }
}

// --- Modern common configuration (4.1.4.3) ---------------------------------------

void VirtioPciTransport::common_read(uint64_t offset, std::span<uint8_t> data)
{
    std::array<uint8_t, common::kSize> img{};
    {
        std::lock_guard lock(mutex_);
        const uint64_t offered = offered_features();
        le::store_at(img, common::kDeviceFeatureSelect, 4, device_feature_select_);
        le::store_at(img, common::kDeviceFeature, 4,
                     device_feature_select_ < 2 ? offered >> (32 * device_feature_select_) : 0);
        le::store_at(img, common::kDriverFeatureSelect, 4, driver_feature_select_);
        le::store_at(img, common::kDriverFeature, 4,
                     driver_feature_select_ < 2 ? driver_features_ >> (32 * driver_feature_select_) : 0);
        le::store_at(img, common::kConfigMsixVector, 2, config_vector_);
        le::store_at(img, common::kNumQueues, 2, queues_.size());
        img[common::kDeviceStatus] = status_;
        img[common::kConfigGeneration] = 0;   // the configuration never changes
        le::store_at(img, common::kQueueSelect, 2, queue_select_);
        if (queue_select_ < queues_.size()) {
            const QueueState& q = *queues_[queue_select_];
            le::store_at(img, common::kQueueSize, 2, q.vq.size());
            le::store_at(img, common::kQueueMsixVector, 2, q.msix_vector);
            le::store_at(img, common::kQueueEnable, 2, q.vq.enabled());
            le::store_at(img, common::kQueueNotifyOff, 2, queue_select_);
            le::store_at(img, common::kQueueDesc, 8, q.vq.desc_addr());
            le::store_at(img, common::kQueueDriver, 8, q.vq.avail_addr());
            le::store_at(img, common::kQueueDevice, 8, q.vq.used_addr());
        }
    }
    for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < img.size() ? img[offset + i] : 0;
}

void VirtioPciTransport::common_write(uint64_t offset, std::span<const uint8_t> data)
{
    const uint64_t v = le::load(data);
    const size_t n = data.size();
    std::lock_guard lock(mutex_);
    QueueState* q = queue_select_ < queues_.size() ? queues_[queue_select_].get() : nullptr;
    const bool q_writable = q && !q->vq.enabled();
    // 64-bit queue addresses, written whole or as 32-bit halves.
    auto addr_field = [&](uint32_t base) { return offset >= base && offset + n <= base + 8; };
    if (addr_field(common::kQueueDesc) || addr_field(common::kQueueDriver) || addr_field(common::kQueueDevice)) {
        if (!q_writable) return;
        if (addr_field(common::kQueueDesc))
            q->vq.set_desc_addr(le::merge(q->vq.desc_addr(), offset - common::kQueueDesc, data));
        else if (addr_field(common::kQueueDriver))
            q->vq.set_avail_addr(le::merge(q->vq.avail_addr(), offset - common::kQueueDriver, data));
        else
            q->vq.set_used_addr(le::merge(q->vq.used_addr(), offset - common::kQueueDevice, data));
        return;
    }
    const uint16_t vectors = msix_vectors();
    switch (offset) {
    case common::kDeviceFeatureSelect:
        if (n == 4) device_feature_select_ = static_cast<uint32_t>(v);
        break;
    case common::kDriverFeatureSelect:
        if (n == 4) driver_feature_select_ = static_cast<uint32_t>(v);
        break;
    case common::kDriverFeature:
        if (n == 4 && !(status_ & kStatusFeaturesOk) && driver_feature_select_ < 2) {
            const unsigned shift = 32 * driver_feature_select_;
            driver_features_ = (driver_features_ & ~(uint64_t{0xffff'ffff} << shift)) | (v << shift);
        }
        break;
    case common::kConfigMsixVector:
        // 4.1.5.1.2: a vector the device cannot map reads back as NO_VECTOR.
        if (n == 2) config_vector_ = v < vectors ? static_cast<uint16_t>(v) : kNoVector;
        break;
    case common::kDeviceStatus:
        if (n == 1) write_status_locked(static_cast<uint8_t>(v), false);
        break;
    case common::kQueueSelect:
        if (n == 2) queue_select_ = static_cast<uint16_t>(v);
        break;
    case common::kQueueSize:
        if (n == 2 && q_writable) q->vq.set_size(static_cast<uint16_t>(v));
        break;
    case common::kQueueMsixVector:
        if (n == 2 && q) q->msix_vector = v < vectors ? static_cast<uint16_t>(v) : kNoVector;
        break;
    case common::kQueueEnable:
        if (n == 2 && q_writable && v == 1) enable_queue_locked(queue_select_);
        break;
    default:
        break;   // read-only or reserved
    }
}

void VirtioPciTransport::write_status_locked(uint8_t value, bool legacy)
{
    if (value == 0) return reset_locked();
    const uint8_t old = status_;
    value = static_cast<uint8_t>((value & ~kStatusDeviceNeedsReset) | (old & kStatusDeviceNeedsReset));
    const uint64_t offered = offered_features();
    if (!legacy && (value & kStatusFeaturesOk) && !(old & kStatusFeaturesOk)) {
        // 2.2.2 / 6.1: only offered features, and a modern driver must take VERSION_1.
        if ((driver_features_ & ~offered) || !(driver_features_ & feature(kFVersion1))) {
            spdlog::warn("{}: driver features {:#x} refused (offered {:#x})", name(), driver_features_, offered);
            value &= static_cast<uint8_t>(~kStatusFeaturesOk);
        }
    }
    status_ = value;
    if ((value & kStatusDriverOk) && !(old & kStatusDriverOk)) {
        const uint64_t negotiated = driver_features_ & offered;
        for (auto& q : queues_) q->vq.set_features(negotiated);
        device_->activate(negotiated);
        kick_all();   // anything made available before DRIVER_OK
    }
}

void VirtioPciTransport::reset_locked()
{
    device_->reset();
    for (auto& q : queues_) {
        q->vq.reset();
        q->msix_vector = kNoVector;
        q->legacy_pfn = 0;
    }
    status_ = 0;
    device_feature_select_ = driver_feature_select_ = 0;
    driver_features_ = 0;
    queue_select_ = 0;
    config_vector_ = kNoVector;
    std::lock_guard lock(isr_mutex_);
    isr_ = 0;
    set_intx(false);
}

void VirtioPciTransport::enable_queue_locked(unsigned q)
{
    VirtQueue& vq = queues_[q]->vq;
    vq.set_features(driver_features_ & offered_features());
    if (!vq.enable()) mark_broken_locked(fmt::format("queue {}: {}", q, vq.error()));
}

void VirtioPciTransport::mark_broken_locked(const std::string& why)
{
    spdlog::warn("{}: {}; device needs reset", name(), why);
    if (status_ & kStatusDeviceNeedsReset) return;
    status_ |= kStatusDeviceNeedsReset;
    needs_reset_.fetch_add(1);
    // 2.1.2: the device SHOULD send a configuration change notification.
    signal_config_locked();
}

// --- Device configuration ---------------------------------------------------------

void VirtioPciTransport::device_cfg_read(uint64_t offset, std::span<uint8_t> data)
{
    const uint32_t size = device_->config_size();
    if (offset >= size) return;
    device_->read_config(static_cast<uint32_t>(offset), data.first(std::min<uint64_t>(data.size(), size - offset)));
}

void VirtioPciTransport::device_cfg_write(uint64_t offset, std::span<const uint8_t> data)
{
    const uint32_t size = device_->config_size();
    if (offset >= size) return;
    std::lock_guard lock(mutex_);
    device_->write_config(static_cast<uint32_t>(offset),
                          data.first(std::min<uint64_t>(data.size(), size - offset)));
}

// --- Legacy interface (4.1.4.8) ----------------------------------------------------

void VirtioPciTransport::legacy_read(uint64_t offset, std::span<uint8_t> data)
{
    const bool msix = msix_enabled();
    const uint64_t cfg = msix ? legacy::kConfigMsix : legacy::kConfigNoMsix;
    std::array<uint8_t, legacy::kConfigMsix> img{};
    {
        std::lock_guard lock(mutex_);
        le::store_at(img, legacy::kDeviceFeatures, 4, offered_features() & 0xffff'ffff);
        le::store_at(img, legacy::kGuestFeatures, 4, driver_features_ & 0xffff'ffff);
        if (queue_select_ < queues_.size()) {
            const QueueState& q = *queues_[queue_select_];
            le::store_at(img, legacy::kQueueAddress, 4, q.legacy_pfn);
            le::store_at(img, legacy::kQueueSize, 2, q.vq.max_size());
            le::store_at(img, legacy::kQueueMsixVector, 2, q.msix_vector);
        }
        le::store_at(img, legacy::kQueueSelect, 2, queue_select_);
        img[legacy::kDeviceStatus] = status_;
        le::store_at(img, legacy::kConfigMsixVector, 2, config_vector_);
    }
    for (size_t i = 0; i < data.size(); ++i) {
        const uint64_t o = offset + i;
        if (o == legacy::kIsrStatus)
            data[i] = read_isr();   // reading clears it
        else if (o < cfg)
            data[i] = img[o];
        else if (o - cfg < device_->config_size())
            device_->read_config(static_cast<uint32_t>(o - cfg), data.subspan(i, 1));
    }
}

void VirtioPciTransport::legacy_write(uint64_t offset, std::span<const uint8_t> data)
{
    const bool msix = msix_enabled();
    const uint64_t cfg = msix ? legacy::kConfigMsix : legacy::kConfigNoMsix;
    if (offset >= cfg) return device_cfg_write(offset - cfg, data);
    const uint64_t v = le::load(data);
    const size_t n = data.size();
    if (offset == legacy::kQueueNotify) {
        if (n == 2) notify(static_cast<unsigned>(v));
        return;
    }
    std::lock_guard lock(mutex_);
    QueueState* q = queue_select_ < queues_.size() ? queues_[queue_select_].get() : nullptr;
    const uint16_t vectors = msix_vectors();
    switch (offset) {
    case legacy::kGuestFeatures:
        if (n == 4) driver_features_ = v & offered_features() & 0xffff'ffff;
        break;
    case legacy::kQueueAddress:
        if (n == 4 && q) set_legacy_pfn_locked(queue_select_, static_cast<uint32_t>(v));
        break;
    case legacy::kQueueSelect:
        if (n == 2) queue_select_ = static_cast<uint16_t>(v);
        break;
    case legacy::kDeviceStatus:
        if (n == 1) write_status_locked(static_cast<uint8_t>(v), true);
        break;
    case legacy::kConfigMsixVector:
        if (n == 2 && msix) config_vector_ = v < vectors ? static_cast<uint16_t>(v) : kNoVector;
        break;
    case legacy::kQueueMsixVector:
        if (n == 2 && msix && q) q->msix_vector = v < vectors ? static_cast<uint16_t>(v) : kNoVector;
        break;
    default:
        break;
    }
}

void VirtioPciTransport::set_legacy_pfn_locked(unsigned qi, uint32_t pfn)
{
    QueueState& q = *queues_[qi];
    q.vq.reset();
    q.legacy_pfn = pfn;
    if (pfn == 0) return;   // the legacy way to disable a queue
    // 2.7.2 legacy layout: fixed size, desc | avail | pad to 4096 | used.
    const uint16_t size = q.vq.max_size();
    const uint64_t desc = uint64_t{pfn} << legacy::kQueueAddressShift;
    const uint64_t avail = desc + uint64_t{size} * sizeof(VirtqDesc);
    const uint64_t used = (avail + avail_bytes(size) + legacy::kVringAlign - 1) & ~(legacy::kVringAlign - 1);
    q.vq.set_size(size);
    q.vq.set_desc_addr(desc);
    q.vq.set_avail_addr(avail);
    q.vq.set_used_addr(used);
    enable_queue_locked(qi);
}

// --- Interrupts ----------------------------------------------------------------

void VirtioPciTransport::signal_queue_locked(unsigned q)
{
    if (msix_enabled()) {
        const uint16_t vector = queues_[q]->msix_vector;
        if (vector == kNoVector) return;   // 4.1.5.3: no interrupt for this queue
        msix_interrupts_.fetch_add(1);
        if (msix_notify(vector)) return;
    }
    raise_isr(kIsrQueue);
}

void VirtioPciTransport::signal_config_locked()
{
    if (msix_enabled()) {
        if (config_vector_ == kNoVector) return;
        msix_interrupts_.fetch_add(1);
        if (msix_notify(config_vector_)) return;
    }
    raise_isr(kIsrConfig);
}

void VirtioPciTransport::raise_isr(uint8_t bits)
{
    intx_interrupts_.fetch_add(1);
    std::lock_guard lock(isr_mutex_);
    isr_ |= bits;
    set_intx(true);
}

uint8_t VirtioPciTransport::read_isr()
{
    std::lock_guard lock(isr_mutex_);
    const uint8_t v = isr_;
    isr_ = 0;
    set_intx(false);
    return v;
}

// --- Notifications and the I/O thread ---------------------------------------------------

void VirtioPciTransport::notify(unsigned q)
{
    if (q >= queues_.size()) return;
    queues_[q]->eventfd.signal();
}

void VirtioPciTransport::kick_all()
{
    for (unsigned q = 0; q < queues_.size(); ++q) notify(q);
}

void VirtioPciTransport::io_loop(std::stop_token stop)
{
    std::vector<pollfd> fds;
    fds.push_back(pollfd{stop_.fd(), POLLIN, 0});
    for (auto& q : queues_) fds.push_back(pollfd{q->eventfd.fd(), POLLIN, 0});
    while (!stop.stop_requested()) {
        const int n = ::poll(fds.data(), fds.size(), -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            spdlog::error("{}: poll: {}", name(), std::strerror(errno));
            return;
        }
        if (fds[0].revents) return;
        for (size_t i = 1; i < fds.size(); ++i) {
            if (!(fds[i].revents & POLLIN)) continue;
            queues_[i - 1]->eventfd.drain();
            process_queue(static_cast<unsigned>(i - 1));
        }
    }
}

void VirtioPciTransport::process_queue(unsigned qi)
{
    std::lock_guard lock(mutex_);
    if (!(status_ & kStatusDriverOk) || (status_ & kStatusDeviceNeedsReset)) return;
    VirtQueue& vq = queues_[qi]->vq;
    if (!vq.enabled()) return;
    for (;;) {
        VirtqPop r;
        while ((r = vq.pop(chain_)) == VirtqPop::kChain) {
            const uint32_t written = device_->process(qi, chain_);
            vq.push(chain_.head, written);
            requests_.fetch_add(1);
        }
        if (r == VirtqPop::kBroken) {
            mark_broken_locked(fmt::format("queue {}: {}", qi, vq.error()));
            break;
        }
        if (!vq.prepare_wait()) break;
    }
    if (vq.needs_interrupt()) signal_queue_locked(qi);
}

// --- PCI configuration access capability (4.1.4.7) --------------------------------------

uint32_t VirtioPciTransport::config_window_read(uint32_t offset, unsigned size)
{
    const unsigned bar = config_read(pci_cfg_cap_ + kPciCapBar, 1);
    const uint32_t off = config_read(pci_cfg_cap_ + kPciCapOffset, 4);
    const uint32_t len = config_read(pci_cfg_cap_ + kPciCapLength, 4);
    std::lock_guard lock(pci_cfg_mutex_);
    // 4.1.4.7.1: a read of pci_cfg_data reads cap.length bytes at cap.offset
    // of cap.bar into it. Lengths other than 1, 2, 4 or outside the BAR: nothing.
    if ((len == 1 || len == 2 || len == 4) && bar < pci::kNumBars && off % len == 0 &&
        uint64_t{off} + len <= bar_size(bar)) {
        pci_cfg_data_.fill(0);
        bar_access_read(bar, off, std::span<uint8_t>(pci_cfg_data_.data(), len));
    }
    const uint32_t at = offset - (pci_cfg_cap_ + kPciCfgCapData);
    return static_cast<uint32_t>(le::load(std::span<const uint8_t>(pci_cfg_data_).subspan(at, size)));
}

void VirtioPciTransport::config_window_write(uint32_t offset, unsigned size, uint32_t value)
{
    const unsigned bar = config_read(pci_cfg_cap_ + kPciCapBar, 1);
    const uint32_t off = config_read(pci_cfg_cap_ + kPciCapOffset, 4);
    const uint32_t len = config_read(pci_cfg_cap_ + kPciCapLength, 4);
    std::array<uint8_t, 4> data;
    {
        std::lock_guard lock(pci_cfg_mutex_);
        const uint32_t at = offset - (pci_cfg_cap_ + kPciCfgCapData);
        le::store_at(pci_cfg_data_, at, size, value);
        data = pci_cfg_data_;
    }
    if ((len == 1 || len == 2 || len == 4) && bar < pci::kNumBars && off % len == 0 &&
        uint64_t{off} + len <= bar_size(bar))
        bar_access_write(bar, off, std::span<const uint8_t>(data.data(), len));
}

// --- Notify addresses for ioeventfds ----------------------------------------------------

std::vector<VirtioNotifyRegion> VirtioPciTransport::regions_for(unsigned bar, uint64_t base) const
{
    std::vector<VirtioNotifyRegion> out;
    for (unsigned q = 0; q < queues_.size(); ++q) {
        VirtioNotifyRegion r;
        r.queue = static_cast<uint16_t>(q);
        r.eventfd = queues_[q]->eventfd.fd();
        r.len = 2;
        if (bar == kModernBar) {
            r.addr = base + kNotifyOffset + uint64_t{q} * kNotifyOffMultiplier;
        } else {
            r.pio = true;
            r.addr = base + legacy::kQueueNotify;
            r.datamatch = q;
        }
        out.push_back(r);
    }
    return out;
}

void VirtioPciTransport::bar_remapped(unsigned bar, std::optional<uint64_t> address)
{
    if (bar != kModernBar && bar != kLegacyBar) return;
    std::lock_guard lock(notify_mutex_);
    if (observer_ && bar_addr_[bar])
        for (const auto& r : regions_for(bar, *bar_addr_[bar])) observer_(r, false);
    bar_addr_[bar] = address;
    if (observer_ && address)
        for (const auto& r : regions_for(bar, *address)) observer_(r, true);
}

void VirtioPciTransport::set_notify_observer(NotifyObserver observer)
{
    std::lock_guard lock(notify_mutex_);
    observer_ = std::move(observer);
    if (!observer_) return;
    for (unsigned bar : {kLegacyBar, kModernBar})
        if (bar_addr_[bar])
            for (const auto& r : regions_for(bar, *bar_addr_[bar])) observer_(r, true);
}

std::vector<VirtioNotifyRegion> VirtioPciTransport::notify_regions() const
{
    std::lock_guard lock(notify_mutex_);
    std::vector<VirtioNotifyRegion> out;
    for (unsigned bar : {kLegacyBar, kModernBar})
        if (bar_addr_[bar])
            for (const auto& r : regions_for(bar, *bar_addr_[bar])) out.push_back(r);
    return out;
}

}  // namespace kvmini
