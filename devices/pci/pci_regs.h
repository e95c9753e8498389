// PCI register layouts and constants, each once, with the section of the PCI
// Local Bus Specification, Revision 3.0 (PCI 3.0) it comes from.
#pragma once

#include <cstdint>

namespace kvmini::pci {

// PCI 3.0 3.2.2.3.2 "Software Generation of Configuration Transactions",
// configuration mechanism #1: CONFIG_ADDRESS is a 32-bit register at 0xcf8
// (only 32-bit accesses hit it), CONFIG_DATA a 32-bit window at 0xcfc..0xcff.
inline constexpr uint16_t kConfigAddressPort = 0xcf8;
inline constexpr uint16_t kConfigDataPort = 0xcfc;
inline constexpr uint16_t kConfigPortsLen = 8;               // 0xcf8..0xcff
inline constexpr uint32_t kConfigAddressEnable = 1u << 31;   // bit 31: enable
inline constexpr uint32_t kConfigAddressBusShift = 16;       // bits 23:16 bus
inline constexpr uint32_t kConfigAddressDevShift = 11;       // bits 15:11 device
inline constexpr uint32_t kConfigAddressFnShift = 8;         // bits 10:8 function
inline constexpr uint32_t kConfigAddressRegMask = 0xfc;      // bits 7:2 register (dword)
// Bits that hold state: enable, bus, device, function, register. Bits 30:24
// are reserved and bits 1:0 read as 0.
inline constexpr uint32_t kConfigAddressWritable = 0x80ff'fffc;

inline constexpr unsigned kSlotsPerBus = 32;
inline constexpr unsigned kConfigSpaceSize = 256;   // PCI 3.0 6.1: 256 bytes per function

// PCI 3.0 6.1 "Configuration Space Organization", figure 6-1: type 0 header.
inline constexpr uint8_t kVendorId = 0x00;        // 16 bits
inline constexpr uint8_t kDeviceId = 0x02;        // 16 bits
inline constexpr uint8_t kCommand = 0x04;         // 16 bits
inline constexpr uint8_t kStatus = 0x06;          // 16 bits
inline constexpr uint8_t kRevisionId = 0x08;
inline constexpr uint8_t kClassProgIf = 0x09;     // class code: prog-if, sub-class, base class
inline constexpr uint8_t kCacheLineSize = 0x0c;
inline constexpr uint8_t kLatencyTimer = 0x0d;
inline constexpr uint8_t kHeaderType = 0x0e;
inline constexpr uint8_t kBar0 = 0x10;            // six 32-bit BARs, 0x10..0x27
inline constexpr uint8_t kSubsystemVendorId = 0x2c;
inline constexpr uint8_t kSubsystemId = 0x2e;
inline constexpr uint8_t kExpansionRom = 0x30;
inline constexpr uint8_t kCapabilitiesPtr = 0x34;
inline constexpr uint8_t kInterruptLine = 0x3c;
inline constexpr uint8_t kInterruptPin = 0x3d;    // 0 none, 1 INTA# .. 4 INTD#
inline constexpr uint8_t kFirstCapability = 0x40; // first byte after the type 0 header
inline constexpr unsigned kNumBars = 6;
inline constexpr uint8_t kHeaderTypeNormal = 0x00;

// PCI 3.0 6.2.2 "Device Control": the Command register.
inline constexpr uint16_t kCommandIo = 1u << 0;            // I/O space decoding
inline constexpr uint16_t kCommandMemory = 1u << 1;        // memory space decoding
inline constexpr uint16_t kCommandBusMaster = 1u << 2;
inline constexpr uint16_t kCommandIntxDisable = 1u << 10;  // Interrupt Disable
inline constexpr uint16_t kCommandWritable = kCommandIo | kCommandMemory | kCommandBusMaster | kCommandIntxDisable;

// PCI 3.0 6.2.3 "Device Status": the Status register.
inline constexpr uint16_t kStatusInterrupt = 1u << 3;      // INTx# asserted (read-only)
inline constexpr uint16_t kStatusCapList = 1u << 4;        // capability list present

// PCI 3.0 6.2.5.1 "Address Maps": BAR low bits.
inline constexpr uint32_t kBarIoSpace = 1u << 0;           // bit 0: 1 = I/O BAR
inline constexpr uint32_t kBarMemType64 = 0x2u << 1;       // bits 2:1 = 10b: 64-bit memory BAR
inline constexpr uint32_t kBarIoFlagBits = 0x3;            // bits 1:0 of an I/O BAR are not address
inline constexpr uint32_t kBarMemFlagBits = 0xf;           // bits 3:0 of a memory BAR are not address

// Class codes (PCI Code and ID Assignment Specification, base class 06h).
inline constexpr uint32_t kClassHostBridge = 0x06'00'00;

// PCI 3.0 6.7 "Capabilities List": each capability starts with its ID and the
// offset of the next one (0 ends the list).
inline constexpr uint8_t kCapIdMsix = 0x11;       // PCI 3.0 6.8.2
inline constexpr uint8_t kCapIdVendor = 0x09;     // vendor specific (used by virtio)

// PCI 3.0 6.8.2 "MSI-X Capability and Table Structure".
// Capability: ID, next, Message Control (16), Table Offset/BIR (32), PBA Offset/BIR (32).
inline constexpr uint8_t kMsixCapLen = 12;
inline constexpr uint8_t kMsixMessageControl = 2;              // offset in the capability
inline constexpr uint8_t kMsixTableOffset = 4;
inline constexpr uint8_t kMsixPbaOffset = 8;
inline constexpr uint16_t kMsixControlTableSizeMask = 0x07ff;  // N-1
inline constexpr uint16_t kMsixControlFunctionMask = 1u << 14;
inline constexpr uint16_t kMsixControlEnable = 1u << 15;
inline constexpr uint32_t kMsixBirMask = 0x7;                  // BAR indicator, bits 2:0
inline constexpr unsigned kMsixMaxVectors = 2048;
// Table entry (16 bytes): Message Address, Message Upper Address, Message Data, Vector Control.
inline constexpr unsigned kMsixEntrySize = 16;
inline constexpr unsigned kMsixEntryAddrLo = 0;
inline constexpr unsigned kMsixEntryAddrHi = 4;
inline constexpr unsigned kMsixEntryData = 8;
inline constexpr unsigned kMsixEntryVectorControl = 12;
inline constexpr uint32_t kMsixVectorMasked = 1u << 0;         // Vector Control bit 0 (set at reset)

// Where kvmini pre-assigns I/O BARs (memory BARs use layout::kPciMmioStart..End):
// above the legacy ISA/PC ports, as PC firmware does.
inline constexpr uint64_t kPciIoStart = 0xc000;
inline constexpr uint64_t kPciIoEnd = 0x10000;

// The host bridge at 00:00.0 (any host-bridge class device satisfies Linux's
// conf1 sanity check, which looks for class 0600h on bus 0).
inline constexpr uint16_t kHostBridgeVendor = 0x8086;
inline constexpr uint16_t kHostBridgeDevice = 0x0d57;

}  // namespace kvmini::pci
