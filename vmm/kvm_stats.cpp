#include "vmm/kvm_stats.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include "vmm/error.h"

namespace kvmini {

namespace {
constexpr size_t kHeaderBytes = 24;  // six u32
constexpr size_t kDescFixedBytes = 16;

uint32_t u32_at(std::span<const uint8_t> b, size_t off)
{
    uint32_t v;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}
uint16_t u16_at(std::span<const uint8_t> b, size_t off)
{
    uint16_t v;
    std::memcpy(&v, b.data() + off, 2);
    return v;
}

void pread_all(int fd, void* dst, size_t len, off_t off, const char* what)
{
    auto* p = static_cast<uint8_t*>(dst);
    size_t done = 0;
    while (done < len) {
        const ssize_t n = ::pread(fd, p + done, len - done, off + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno(std::string("KVM statistics: read of the ") + what);
        if (n == 0) throw Error(std::string("KVM statistics: the ") + what + " is cut short");
        done += static_cast<size_t>(n);
    }
}
}  // namespace

std::vector<KvmStatDesc> parse_kvm_stats_descriptors(std::span<const uint8_t> blob, uint32_t& data_offset)
{
    if (blob.size() < kHeaderBytes) throw Error("KVM statistics: header cut short");
    const uint32_t name_size = u32_at(blob, 4);
    const uint32_t num_desc = u32_at(blob, 8);
    const uint32_t desc_offset = u32_at(blob, 16);
    data_offset = u32_at(blob, 20);
    const uint64_t stride = kDescFixedBytes + uint64_t{name_size};
    if (name_size == 0 || uint64_t{desc_offset} + stride * num_desc > blob.size())
        throw Error("KVM statistics: descriptors outside the file");
    std::vector<KvmStatDesc> out;
    for (uint32_t i = 0; i < num_desc; ++i) {
        const size_t d = desc_offset + i * stride;
        const uint16_t size = u16_at(blob, d + 6);
        if (size != 1) continue;  // a histogram
        KvmStatDesc desc;
        desc.flags = u32_at(blob, d);
        desc.offset = u32_at(blob, d + 8);
        const char* name = reinterpret_cast<const char*>(blob.data() + d + kDescFixedBytes);
        desc.name.assign(name, strnlen(name, name_size));
        out.push_back(std::move(desc));
    }
    return out;
}

bool KvmStats::is_cumulative(const KvmStatDesc& d)
{
    return (d.flags & KVM_STATS_TYPE_MASK) == KVM_STATS_TYPE_CUMULATIVE;
}

KvmStats::KvmStats(int kvm_object_fd)
{
    const int fd = ::ioctl(kvm_object_fd, KVM_GET_STATS_FD, 0);
    if (fd < 0) throw_errno("KVM_GET_STATS_FD");
    fd_.reset(fd);
    uint8_t header[kHeaderBytes];
    pread_all(fd, header, sizeof header, 0, "header");
    const std::span<const uint8_t> h(header, sizeof header);
    const uint32_t name_size = u32_at(h, 4), num_desc = u32_at(h, 8), desc_offset = u32_at(h, 16);
    const uint64_t end = uint64_t{desc_offset} + (kDescFixedBytes + uint64_t{name_size}) * num_desc;
    if (end > (1u << 24)) throw Error("KVM statistics: implausibly large descriptor table");
    std::vector<uint8_t> blob(end);
    pread_all(fd, blob.data(), blob.size(), 0, "descriptors");
    descs_ = parse_kvm_stats_descriptors(blob, data_offset_);
    for (const auto& d : descs_) data_size_ = std::max<uint32_t>(data_size_, d.offset + 8);
}

std::vector<uint64_t> KvmStats::read() const
{
    std::vector<uint8_t> data(data_size_);
    if (data_size_) pread_all(fd_.get(), data.data(), data.size(), data_offset_, "data");
    std::vector<uint64_t> values;
    values.reserve(descs_.size());
    for (const auto& d : descs_) {
        uint64_t v;
        std::memcpy(&v, data.data() + d.offset, 8);
        values.push_back(v);
    }
    return values;
}

}  // namespace kvmini
