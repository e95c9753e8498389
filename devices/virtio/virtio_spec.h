// Virtio register layouts and constants, each once, with the section of the
// Virtual I/O Device (VIRTIO) Version 1.2 specification (OASIS) it comes from.
// Block-device constants are in devices/virtio/virtio_blk.h.
#pragma once

#include <cstdint>

namespace kvmini::virtio {

// 2.1 "Device Status Field".
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusDeviceNeedsReset = 64;
inline constexpr uint8_t kStatusFailed = 128;

// 6 "Reserved Feature Bits" (bit numbers).
inline constexpr unsigned kFNotifyOnEmpty = 24;    // legacy only
inline constexpr unsigned kFAnyLayout = 27;        // legacy only
inline constexpr unsigned kFRingIndirectDesc = 28;
inline constexpr unsigned kFRingEventIdx = 29;
inline constexpr unsigned kFVersion1 = 32;
inline constexpr uint64_t feature(unsigned bit) { return uint64_t{1} << bit; }

// 2.7 "Split Virtqueues".
// 2.7.5 "The Virtqueue Descriptor Table": 16 bytes per descriptor.
struct VirtqDesc {
    uint64_t addr;   // guest-physical
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;     // 2.7.5.3 "Indirect Descriptors"
// 2.7.6 "The Virtqueue Available Ring": flags, idx, ring[size], used_event.
inline constexpr uint64_t kAvailFlags = 0;
inline constexpr uint64_t kAvailIdx = 2;
inline constexpr uint64_t kAvailRing = 4;
inline constexpr uint16_t kAvailFNoInterrupt = 1;
inline constexpr uint64_t avail_bytes(uint16_t size) { return 6 + 2ull * size; }
// 2.7.8 "The Virtqueue Used Ring": flags, idx, ring[size] of {id, len}, avail_event.
inline constexpr uint64_t kUsedFlags = 0;
inline constexpr uint64_t kUsedIdx = 2;
inline constexpr uint64_t kUsedRing = 4;
inline constexpr uint64_t kUsedElemSize = 8;
inline constexpr uint16_t kUsedFNoNotify = 1;
inline constexpr uint64_t used_bytes(uint16_t size) { return 6 + 8ull * size; }
// 2.7 table "Virtqueue Part Alignment".
inline constexpr uint64_t kDescAlign = 16;
inline constexpr uint64_t kAvailAlign = 2;
inline constexpr uint64_t kUsedAlign = 4;
// 2.7.2 "Virtqueue Size": a power of two, at most 32768.
inline constexpr uint16_t kMaxQueueSize = 32768;
// 2.7.7 "Used Buffer Notification Suppression" / 2.7.10: vring_need_event().
inline constexpr bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx)
{
    return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

// 4.1 "Virtio Over PCI Bus".
// 4.1.2 "PCI Device Discovery".
inline constexpr uint16_t kPciVendor = 0x1af4;
inline constexpr uint16_t kPciModernDeviceBase = 0x1040;      // 0x1040 + virtio device ID
inline constexpr uint16_t kPciTransitionalBlk = 0x1001;        // 4.1.2.3 transitional IDs
inline constexpr uint8_t kPciModernRevision = 1;               // non-transitional: revision >= 1
inline constexpr uint8_t kPciTransitionalRevision = 0;         // transitional: revision 0

// 4.1.4 "Virtio Structure PCI Capabilities": struct virtio_pci_cap, a vendor
// capability: cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2],
// le32 offset, le32 length. Offsets below are within the capability.
inline constexpr uint8_t kPciCapLen = 16;
inline constexpr uint8_t kPciCapCfgType = 3;
inline constexpr uint8_t kPciCapBar = 4;
inline constexpr uint8_t kPciCapId = 5;
inline constexpr uint8_t kPciCapOffset = 8;
inline constexpr uint8_t kPciCapLength = 12;
inline constexpr uint8_t kPciCapCommonCfg = 1;
inline constexpr uint8_t kPciCapNotifyCfg = 2;
inline constexpr uint8_t kPciCapIsrCfg = 3;
inline constexpr uint8_t kPciCapDeviceCfg = 4;
inline constexpr uint8_t kPciCapPciCfg = 5;
// 4.1.4.4 "Notification structure layout": the cap plus le32 notify_off_multiplier.
inline constexpr uint8_t kPciNotifyCapLen = 20;
inline constexpr uint8_t kPciNotifyOffMultiplier = 16;
// 4.1.4.7 "PCI configuration access capability": the cap plus u8 pci_cfg_data[4].
inline constexpr uint8_t kPciCfgCapLen = 20;
inline constexpr uint8_t kPciCfgCapData = 16;

// 4.1.4.3 "Common configuration structure layout" (struct virtio_pci_common_cfg).
namespace common {
inline constexpr uint32_t kDeviceFeatureSelect = 0x00;   // le32 RW
inline constexpr uint32_t kDeviceFeature = 0x04;         // le32 RO
inline constexpr uint32_t kDriverFeatureSelect = 0x08;   // le32 RW
inline constexpr uint32_t kDriverFeature = 0x0c;         // le32 RW
inline constexpr uint32_t kConfigMsixVector = 0x10;      // le16 RW
inline constexpr uint32_t kNumQueues = 0x12;             // le16 RO
inline constexpr uint32_t kDeviceStatus = 0x14;          // u8 RW
inline constexpr uint32_t kConfigGeneration = 0x15;      // u8 RO
inline constexpr uint32_t kQueueSelect = 0x16;           // le16 RW
inline constexpr uint32_t kQueueSize = 0x18;             // le16 RW
inline constexpr uint32_t kQueueMsixVector = 0x1a;       // le16 RW
inline constexpr uint32_t kQueueEnable = 0x1c;           // le16 RW
inline constexpr uint32_t kQueueNotifyOff = 0x1e;        // le16 RO
inline constexpr uint32_t kQueueDesc = 0x20;             // le64 RW
inline constexpr uint32_t kQueueDriver = 0x28;           // le64 RW (available ring)
inline constexpr uint32_t kQueueDevice = 0x30;           // le64 RW (used ring)
inline constexpr uint32_t kQueueNotifyData = 0x38;       // le16 RO (1.2)
inline constexpr uint32_t kQueueReset = 0x3a;            // le16 RW (1.2)
inline constexpr uint32_t kSize = 0x3c;
}  // namespace common

// 4.1.4.5 "ISR status capability": bit 0 queue interrupt, bit 1 config change.
inline constexpr uint8_t kIsrQueue = 1;
inline constexpr uint8_t kIsrConfig = 2;

// 4.1.5.1.2 "MSI-X Vector Configuration".
inline constexpr uint16_t kNoVector = 0xffff;

// 4.1.4.8 "Legacy Interfaces: A Note on PCI Device Layout": the legacy
// registers at the start of BAR0 (an I/O BAR), then device configuration at
// 20, or at 24 while MSI-X is enabled.
namespace legacy {
inline constexpr uint32_t kDeviceFeatures = 0;    // le32 R
inline constexpr uint32_t kGuestFeatures = 4;     // le32 RW
inline constexpr uint32_t kQueueAddress = 8;      // le32 RW (page frame number)
inline constexpr uint32_t kQueueSize = 12;        // le16 R
inline constexpr uint32_t kQueueSelect = 14;      // le16 RW
inline constexpr uint32_t kQueueNotify = 16;      // le16 RW
inline constexpr uint32_t kDeviceStatus = 18;     // u8 RW
inline constexpr uint32_t kIsrStatus = 19;        // u8 R (read clears)
inline constexpr uint32_t kConfigMsixVector = 20; // le16 RW, only while MSI-X is enabled
inline constexpr uint32_t kQueueMsixVector = 22;  // le16 RW, only while MSI-X is enabled
inline constexpr uint32_t kConfigNoMsix = 20;
inline constexpr uint32_t kConfigMsix = 24;
// 2.7.2 "Legacy Interfaces: A Note on Virtqueue Layout": desc, then avail, then
// used at the next 4096 boundary; the PFN is in 4096-byte units.
inline constexpr uint32_t kQueueAddressShift = 12;
inline constexpr uint64_t kVringAlign = 4096;
}  // namespace legacy

}  // namespace kvmini::virtio
