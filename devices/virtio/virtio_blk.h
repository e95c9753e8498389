// virtio-blk (virtio 1.2 section 5.2) backed by a raw image file or block
// device: IN, OUT (preadv/pwritev over all segments), FLUSH (fdatasync),
// GET_ID, DISCARD and WRITE_ZEROES (fallocate hole punching / zero range).
// A read-only disk refuses writes with VIRTIO_BLK_S_IOERR.
//
// Machine wiring, one per --disk:
//   auto dev = make_virtio_blk_pci(mem, parse_disk_option(arg));   // throws Error naming the file
//   uint8_t slot = bridge.add_device(*dev);
//   dev->connect_irqs(router.line(gsi::pci_intx_gsi(slot, 0)), router.msi_sender());
#pragma once

#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/virtio_device.h"
#include "vmm/unique_fd.h"

namespace kvmini {

class GuestMemory;
class VirtioPciTransport;

namespace virtio::blk {
// 5.2.1 "Device ID".
inline constexpr uint16_t kDeviceType = 2;
// 5.2.3 "Feature bits".
inline constexpr unsigned kFSizeMax = 1;
inline constexpr unsigned kFSegMax = 2;
inline constexpr unsigned kFRo = 5;
inline constexpr unsigned kFBlkSize = 6;
inline constexpr unsigned kFFlush = 9;
inline constexpr unsigned kFDiscard = 13;
inline constexpr unsigned kFWriteZeroes = 14;
// 5.2.4 "Device configuration layout" (struct virtio_blk_config), offsets.
inline constexpr uint32_t kCfgCapacity = 0;               // le64, 512-byte sectors
inline constexpr uint32_t kCfgSizeMax = 8;                // le32
inline constexpr uint32_t kCfgSegMax = 12;                // le32
inline constexpr uint32_t kCfgGeometry = 16;              // cylinders le16, heads u8, sectors u8
inline constexpr uint32_t kCfgBlkSize = 20;               // le32
inline constexpr uint32_t kCfgTopology = 24;              // 8 bytes
inline constexpr uint32_t kCfgWriteback = 32;             // u8
inline constexpr uint32_t kCfgNumQueues = 34;             // le16
inline constexpr uint32_t kCfgMaxDiscardSectors = 36;     // le32
inline constexpr uint32_t kCfgMaxDiscardSeg = 40;         // le32
inline constexpr uint32_t kCfgDiscardSectorAlignment = 44;// le32
inline constexpr uint32_t kCfgMaxWriteZeroesSectors = 48; // le32
inline constexpr uint32_t kCfgMaxWriteZeroesSeg = 52;     // le32
inline constexpr uint32_t kCfgWriteZeroesMayUnmap = 56;   // u8
inline constexpr uint32_t kConfigSize = 60;               // up to unused1[3]
// 5.2.6 "Device Operation": struct virtio_blk_req { le32 type; le32 reserved;
// le64 sector; u8 data[]; u8 status; }.
inline constexpr uint32_t kReqHeaderSize = 16;
inline constexpr uint32_t kTIn = 0;
inline constexpr uint32_t kTOut = 1;
inline constexpr uint32_t kTFlush = 4;
inline constexpr uint32_t kTGetId = 8;
inline constexpr uint32_t kTDiscard = 11;
inline constexpr uint32_t kTWriteZeroes = 13;
inline constexpr uint8_t kSOk = 0;
inline constexpr uint8_t kSIoErr = 1;
inline constexpr uint8_t kSUnsupp = 2;
inline constexpr uint32_t kIdBytes = 20;                  // GET_ID: NUL-padded, up to 20 bytes
inline constexpr uint32_t kSectorSize = 512;
// struct virtio_blk_discard_write_zeroes { le64 sector; le32 num_sectors; le32 flags; }.
inline constexpr uint32_t kSegmentSize = 16;
inline constexpr uint32_t kSegFlagUnmap = 1;
}  // namespace virtio::blk

// --disk PATH[,ro][,serial=ID]
struct DiskOptions {
    std::string path;
    bool read_only = false;
    std::string serial;   // GET_ID string (<= 20 bytes); default: the file's base name
    bool operator==(const DiskOptions&) const = default;
};
// Parses the --disk argument. Throws Error on an empty path, an unknown
// option or a serial longer than 20 bytes. (A path cannot contain a comma.)
DiskOptions parse_disk_option(const std::string& arg);

class VirtioBlk : public VirtioDevice {
public:
    // Limits this device advertises.
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint32_t kSegMax = kQueueSize - 2;     // header and status take 2
    static constexpr uint32_t kSizeMax = 1u << 20;
    static constexpr uint32_t kMaxDiscardSectors = 1u << 22;  // 2 GiB per segment
    static constexpr uint32_t kMaxDiscardSeg = 32;

    // Opens the image. Throws Error naming the file if it is missing,
    // unreadable (or not writable without ro), not a regular file or block
    // device, or locked by another user.
    explicit VirtioBlk(const DiskOptions& options);

    const std::string& path() const { return options_.path; }
    bool read_only() const { return options_.read_only; }
    uint64_t capacity_sectors() const { return capacity_; }

    struct Stats {
        uint64_t reads = 0, writes = 0, flushes = 0, get_ids = 0, discards = 0, write_zeroes = 0;
        uint64_t io_errors = 0;     // requests completed with IOERR
        uint64_t unsupported = 0;   // requests completed with UNSUPP
        uint64_t malformed = 0;     // chains with nowhere to put a status
    };
    Stats stats() const;

    std::string name() const override { return "virtio-blk(" + options_.path + ")"; }
    uint16_t device_type() const override { return virtio::blk::kDeviceType; }
    uint64_t features() const override;
    unsigned num_queues() const override { return 1; }
    uint16_t queue_max_size(unsigned) const override { return kQueueSize; }
    uint32_t config_size() const override { return virtio::blk::kConfigSize; }
    void read_config(uint32_t offset, std::span<uint8_t> data) const override;
    uint32_t process(unsigned queue, const VirtqChain& chain) override;

private:
    uint8_t serve(const VirtqChain& chain, uint32_t& data_written);
    uint8_t do_read(const VirtqChain& chain, uint64_t sector, uint32_t& data_written);
    uint8_t do_write(const VirtqChain& chain, uint64_t sector);
    uint8_t do_get_id(const VirtqChain& chain, uint32_t& data_written);
    uint8_t do_discard_or_zero(const VirtqChain& chain, bool zero);
    uint8_t zero_range(uint64_t offset, uint64_t len, bool may_unmap);

    DiskOptions options_;
    UniqueFd fd_;
    std::vector<iovec> iov_;   // scratch for the I/O thread
    uint64_t capacity_ = 0;   // sectors
    std::array<uint8_t, virtio::blk::kConfigSize> config_{};
    std::array<uint8_t, virtio::blk::kIdBytes> id_{};
    struct AtomicStats {
        std::atomic<uint64_t> reads{0}, writes{0}, flushes{0}, get_ids{0}, discards{0}, write_zeroes{0};
        std::atomic<uint64_t> io_errors{0}, unsupported{0}, malformed{0};
    };
    AtomicStats stats_;
};

// A virtio-blk PCI device (transitional: modern and legacy interfaces).
std::unique_ptr<VirtioPciTransport> make_virtio_blk_pci(GuestMemory& mem, const DiskOptions& options);

}  // namespace kvmini
