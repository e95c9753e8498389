#include "vmm/boot/boot_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "vmm/error.h"

namespace kvmini::boot_util {

std::string hex(uint64_t v)
{
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

uint64_t low_ram_end(const GuestMemory& mem)
{
    for (const MemoryRegion& r : mem.regions())
        if (r.guest_addr == 0) return r.size;
    return 0;
}

BootFile::BootFile(std::string path, std::string role) : path_(std::move(path)), role_(std::move(role))
{
    // O_NONBLOCK: opening a FIFO must not wait for a writer before the type
    // check below refuses it (it means nothing for a regular file).
    fd_.reset(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd_.valid()) throw_errno("cannot open " + path_);
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) throw_errno("cannot stat " + path_);
    if (!S_ISREG(st.st_mode)) fail(role_ + " is not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) fail(role_ + " file is empty");
}

void BootFile::fail(std::string_view reason) const
{
    throw Error(path_ + ": " + std::string(reason));
}

void BootFile::require(uint64_t offset, uint64_t len, std::string_view what) const
{
    if (offset > size_ || len > size_ - offset)
        fail("truncated " + role_ + ": " + std::string(what) + " needs bytes [" + hex(offset) + ", " +
             hex(offset + len) + ") but the file is only " + std::to_string(size_) + " bytes");
}

void BootFile::read(uint64_t offset, void* dst, uint64_t len, std::string_view what) const
{
    require(offset, len, what);
    auto* out = static_cast<uint8_t*>(dst);
    uint64_t done = 0;
    while (done < len) {
        const ssize_t n = ::pread(fd_.get(), out + done, len - done, static_cast<off_t>(offset + done));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("cannot read " + path_);
        }
        if (n == 0) fail("file shrank while being read (" + std::string(what) + ")");
        done += static_cast<uint64_t>(n);
    }
}

std::vector<uint8_t> BootFile::read(uint64_t offset, uint64_t len, std::string_view what) const
{
    require(offset, len, what);
    std::vector<uint8_t> data(len);
    read(offset, data.data(), len, what);
    return data;
}

std::vector<uint8_t> BootFile::read_prefix(uint64_t len) const
{
    return read(0, len < size_ ? len : size_, "file start");
}

void BootFile::copy_to_guest(GuestMemory& mem, uint64_t gpa, uint64_t offset, uint64_t len,
                             std::string_view what) const
{
    if (len == 0) return;
    uint8_t* dst = mem.host_ptr(gpa, len);
    if (!dst)
        fail(std::string(what) + " at guest " + hex(gpa) + ".." + hex(gpa + len) + " is outside guest RAM (" +
             std::to_string(mem.size()) + " bytes)");
    read(offset, dst, len, what);
}

}  // namespace kvmini::boot_util
