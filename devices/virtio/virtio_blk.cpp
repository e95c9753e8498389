#include "devices/virtio/virtio_blk.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "devices/le.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/virtio_spec.h"
#include "vmm/error.h"

namespace kvmini {

using namespace virtio;
using namespace virtio::blk;

// --- Option parsing ------------------------------------------------------------

DiskOptions parse_disk_option(const std::string& arg)
{
    DiskOptions opts;
    size_t pos = arg.find(',');
    opts.path = arg.substr(0, pos);
    if (opts.path.empty()) throw Error("--disk '" + arg + "': missing image path (expected PATH[,ro][,serial=ID])");
    while (pos != std::string::npos) {
        const size_t next = arg.find(',', pos + 1);
        const std::string item = arg.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
        if (item == "ro" || item == "readonly") {
            opts.read_only = true;
        } else if (item == "rw") {
            opts.read_only = false;
        } else if (item.rfind("serial=", 0) == 0) {
            opts.serial = item.substr(7);
            if (opts.serial.size() > kIdBytes)
                throw Error("--disk '" + arg + "': serial longer than 20 bytes");
        } else {
            throw Error("--disk '" + arg + "': unknown option '" + item + "' (expected PATH[,ro][,serial=ID])");
        }
        pos = next;
    }
    return opts;
}

// --- Helpers over a chain's buffers -----------------------------------------------

namespace {

// iovecs for bytes [offset, offset+len) of `bufs`; false if they are not all
// there or not all in RAM.
bool slice(const std::vector<VirtqBuffer>& bufs, uint64_t offset, uint64_t len, std::vector<iovec>& out)
{
    out.clear();
    for (const VirtqBuffer& b : bufs) {
        if (len == 0) break;
        if (offset >= b.len) {
            offset -= b.len;
            continue;
        }
        const uint64_t take = std::min<uint64_t>(b.len - offset, len);
        if (!b.host) return false;
        out.push_back(iovec{b.host + offset, take});
        len -= take;
        offset = 0;
    }
    return len == 0;
}

bool gather(const std::vector<VirtqBuffer>& bufs, uint64_t offset, void* dst, uint64_t len)
{
    auto* p = static_cast<uint8_t*>(dst);
    for (const VirtqBuffer& b : bufs) {
        if (len == 0) break;
        if (offset >= b.len) {
            offset -= b.len;
            continue;
        }
        const uint64_t take = std::min<uint64_t>(b.len - offset, len);
        if (!b.host) return false;
        std::memcpy(p, b.host + offset, take);
        p += take;
        len -= take;
        offset = 0;
    }
    return len == 0;
}

// preadv / pwritev of all of `iov` at `offset`, resuming after short
// transfers and EINTR (consuming `iov`). False on error or end of file.
bool transfer_all(int fd, std::vector<iovec>& iov, uint64_t offset, bool write)
{
    size_t first = 0;
    while (first < iov.size()) {
        const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
        const ssize_t n = write ? ::pwritev(fd, &iov[first], count, static_cast<off_t>(offset))
                                : ::preadv(fd, &iov[first], count, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        offset += static_cast<uint64_t>(n);
        size_t done = static_cast<size_t>(n);
        while (first < iov.size() && done >= iov[first].iov_len) done -= iov[first++].iov_len;
        if (done) {
            iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + done;
            iov[first].iov_len -= done;
        }
    }
    return true;
}

}  // namespace

// --- The device --------------------------------------------------------------------

VirtioBlk::VirtioBlk(const DiskOptions& options) : options_(options)
{
    const std::string& path = options_.path;
    const int fd = ::open(path.c_str(), (options_.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        std::string hint;
        if ((err == EACCES || err == EROFS) && !options_.read_only) hint = " (add ,ro to use it read-only)";
        throw Error("disk image '" + path + "': " + std::strerror(err) + hint);
    }
    fd_.reset(fd);
    struct stat st {};
    if (::fstat(fd, &st) < 0) throw_errno("disk image '" + path + "': fstat");
    uint64_t bytes;
    if (S_ISREG(st.st_mode)) {
        bytes = static_cast<uint64_t>(st.st_size);
    } else if (S_ISBLK(st.st_mode)) {
        if (::ioctl(fd, BLKGETSIZE64, &bytes) < 0) throw_errno("disk image '" + path + "': BLKGETSIZE64");
    } else {
        throw Error("disk image '" + path + "': not a regular file or block device");
    }
    // One writer per image: a second kvmini (or anything using flock) on the
    // same file would corrupt it.
    if (::flock(fd, (options_.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
        throw Error("disk image '" + path + "': already in use (locked by another --disk or process: " +
                    std::strerror(errno) + ")");
    if (bytes % kSectorSize)
        spdlog::warn("disk image '{}': size {} is not a multiple of 512; the last {} bytes are not visible", path,
                     bytes, bytes % kSectorSize);
    capacity_ = bytes / kSectorSize;

    le::store_at(config_, kCfgCapacity, 8, capacity_);
    le::store_at(config_, kCfgSizeMax, 4, kSizeMax);
    le::store_at(config_, kCfgSegMax, 4, kSegMax);
    le::store_at(config_, kCfgBlkSize, 4, kSectorSize);
    le::store_at(config_, kCfgNumQueues, 2, 1);
    le::store_at(config_, kCfgMaxDiscardSectors, 4, kMaxDiscardSectors);
    le::store_at(config_, kCfgMaxDiscardSeg, 4, kMaxDiscardSeg);
    le::store_at(config_, kCfgDiscardSectorAlignment, 4, 1);
    le::store_at(config_, kCfgMaxWriteZeroesSectors, 4, kMaxDiscardSectors);
    le::store_at(config_, kCfgMaxWriteZeroesSeg, 4, kMaxDiscardSeg);
    config_[kCfgWriteZeroesMayUnmap] = 1;

    std::string id = options_.serial;
    if (id.empty()) {
        const size_t slash = path.find_last_of('/');
        id = slash == std::string::npos ? path : path.substr(slash + 1);
    }
    std::memcpy(id_.data(), id.data(), std::min<size_t>(id.size(), kIdBytes));
}

uint64_t VirtioBlk::features() const
{
    uint64_t f = feature(kFSizeMax) | feature(kFSegMax) | feature(kFBlkSize) | feature(kFFlush);
    if (options_.read_only)
        f |= feature(kFRo);
    else
        f |= feature(kFDiscard) | feature(kFWriteZeroes);
    return f;
}

void VirtioBlk::read_config(uint32_t offset, std::span<uint8_t> data) const
{
    for (size_t i = 0; i < data.size(); ++i)
        data[i] = offset + i < config_.size() ? config_[offset + i] : 0;
}

VirtioBlk::Stats VirtioBlk::stats() const
{
    Stats s;
    s.reads = stats_.reads;
    s.writes = stats_.writes;
    s.flushes = stats_.flushes;
    s.get_ids = stats_.get_ids;
    s.discards = stats_.discards;
    s.write_zeroes = stats_.write_zeroes;
    s.io_errors = stats_.io_errors;
    s.unsupported = stats_.unsupported;
    s.malformed = stats_.malformed;
    return s;
}

uint32_t VirtioBlk::process(unsigned, const VirtqChain& chain)
{
    // The status byte is the last device-writable byte of the chain.
    if (chain.writable.empty()) {
        ++stats_.malformed;
        return 0;
    }
    const VirtqBuffer& last = chain.writable.back();
    uint32_t data_written = 0;
    const uint8_t status = chain.buffers_ok ? serve(chain, data_written) : kSIoErr;
    if (status == kSIoErr) ++stats_.io_errors;
    if (status == kSUnsupp) ++stats_.unsupported;
    if (!last.host) {
        ++stats_.malformed;
        return 0;
    }
    last.host[last.len - 1] = status;
    return data_written + 1;
}

uint8_t VirtioBlk::serve(const VirtqChain& chain, uint32_t& data_written)
{
    uint8_t header[kReqHeaderSize];
    if (!gather(chain.readable, 0, header, sizeof(header))) return kSIoErr;
    const uint32_t type = le::load32(header);
    const uint64_t sector = le::load64(header + 8);
    switch (type) {
    case kTIn:
        ++stats_.reads;
        return do_read(chain, sector, data_written);
    case kTOut:
        ++stats_.writes;
        return do_write(chain, sector);
    case kTFlush:
        ++stats_.flushes;
        if (options_.read_only) return kSOk;
        return ::fdatasync(fd_.get()) == 0 ? kSOk : kSIoErr;
    case kTGetId:
        ++stats_.get_ids;
        return do_get_id(chain, data_written);
    case kTDiscard:
        ++stats_.discards;
        return do_discard_or_zero(chain, false);
    case kTWriteZeroes:
        ++stats_.write_zeroes;
        return do_discard_or_zero(chain, true);
    default:
        return kSUnsupp;
    }
}

uint8_t VirtioBlk::do_read(const VirtqChain& chain, uint64_t sector, uint32_t& data_written)
{
    const uint64_t len = chain.writable_bytes - 1;   // all but the status byte
    if (len % kSectorSize || sector > capacity_ || len / kSectorSize > capacity_ - sector) return kSIoErr;
    if (!slice(chain.writable, 0, len, iov_)) return kSIoErr;
    if (!transfer_all(fd_.get(), iov_, sector * kSectorSize, false)) return kSIoErr;
    data_written = static_cast<uint32_t>(len);
    return kSOk;
}

uint8_t VirtioBlk::do_write(const VirtqChain& chain, uint64_t sector)
{
    if (options_.read_only) return kSIoErr;   // 5.2.6.2: IOERR, and no data written
    const uint64_t len = chain.readable_bytes - kReqHeaderSize;
    if (len % kSectorSize || sector > capacity_ || len / kSectorSize > capacity_ - sector) return kSIoErr;
    if (!slice(chain.readable, kReqHeaderSize, len, iov_)) return kSIoErr;
    return transfer_all(fd_.get(), iov_, sector * kSectorSize, true) ? kSOk : kSIoErr;
}

uint8_t VirtioBlk::do_get_id(const VirtqChain& chain, uint32_t& data_written)
{
    const uint64_t len = std::min<uint64_t>(chain.writable_bytes - 1, kIdBytes);
    std::vector<iovec> iov;
    if (!slice(chain.writable, 0, len, iov)) return kSIoErr;
    const uint8_t* src = id_.data();
    for (const iovec& v : iov) {
        std::memcpy(v.iov_base, src, v.iov_len);
        src += v.iov_len;
    }
    data_written = static_cast<uint32_t>(len);
    return kSOk;
}

uint8_t VirtioBlk::do_discard_or_zero(const VirtqChain& chain, bool zero)
{
    if (options_.read_only) return kSIoErr;
    const uint64_t len = chain.readable_bytes - kReqHeaderSize;
    if (len == 0 || len % kSegmentSize || len / kSegmentSize > kMaxDiscardSeg) return kSIoErr;
    const uint64_t segments = len / kSegmentSize;
    for (uint64_t i = 0; i < segments; ++i) {
        uint8_t seg[kSegmentSize];
        if (!gather(chain.readable, kReqHeaderSize + i * kSegmentSize, seg, sizeof(seg))) return kSIoErr;
        const uint64_t sector = le::load64(seg);
        const uint32_t num = le::load32(seg + 8), flags = le::load32(seg + 12);
        // 5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP.
        if ((flags & ~kSegFlagUnmap) || (!zero && (flags & kSegFlagUnmap))) return kSUnsupp;
        if (num > kMaxDiscardSectors || sector > capacity_ || num > capacity_ - sector) return kSIoErr;
        const uint64_t off = sector * kSectorSize, bytes = uint64_t{num} * kSectorSize;
        if (!bytes) continue;
        if (zero) {
            if (const uint8_t s = zero_range(off, bytes, flags & kSegFlagUnmap); s != kSOk) return s;
        } else if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                               static_cast<off_t>(bytes)) < 0 &&
                   errno != EOPNOTSUPP) {
            // A discard is a hint: a file system that cannot punch holes just keeps the data.
            return kSIoErr;
        }
    }
    return kSOk;
}

// After this, [offset, offset+len) reads as zeroes, whatever the file system supports.
uint8_t VirtioBlk::zero_range(uint64_t offset, uint64_t len, bool may_unmap)
{
    const int fd = fd_.get();
    const auto off = static_cast<off_t>(offset);
    const auto n = static_cast<off_t>(len);
    if (may_unmap && ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n) == 0) return kSOk;
    if (::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, n) == 0) return kSOk;
    if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n) == 0) return kSOk;
    static const std::vector<uint8_t> zeros(64 * 1024, 0);
    for (uint64_t done = 0; done < len;) {
        const size_t chunk = static_cast<size_t>(std::min<uint64_t>(zeros.size(), len - done));
        std::vector<iovec> iov{iovec{const_cast<uint8_t*>(zeros.data()), chunk}};
        if (!transfer_all(fd, iov, offset + done, true)) return kSIoErr;
        done += chunk;
    }
    return kSOk;
}

std::unique_ptr<VirtioPciTransport> make_virtio_blk_pci(GuestMemory& mem, const DiskOptions& options)
{
    return std::make_unique<VirtioPciTransport>(mem, std::make_unique<VirtioBlk>(options));
}

}  // namespace kvmini
