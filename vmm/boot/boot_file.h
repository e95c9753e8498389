// A kernel, initrd or module file as the loaders see it: opened once, read
// piecewise with pread (a vmlinux with debug info can be hundreds of MiB, an
// initrd goes straight into guest RAM), and every failure turned into a
// one-line Error naming the file and what is wrong with it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "vmm/guest_memory.h"
#include "vmm/unique_fd.h"

namespace kvmini::boot_util {

std::string hex(uint64_t v);  // "0x1f1"

inline constexpr uint64_t kPageSize = 4096;
constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
constexpr uint64_t align_down(uint64_t v, uint64_t a) { return v / a * a; }

// End (exclusive) of the RAM region that starts at guest address 0, i.e. of
// RAM below the MMIO hole: where kernels, initrds and modules must end.
uint64_t low_ram_end(const GuestMemory& mem);

class BootFile {
public:
    // `role` says what the file is for ("kernel", "initrd", "Multiboot module")
    // and appears in error messages. Throws Error "cannot open PATH: <errno
    // text>" if it cannot be opened, "PATH: ROLE is not a regular file", and
    // "PATH: ROLE file is empty" for a zero-length file.
    BootFile(std::string path, std::string role);

    const std::string& path() const { return path_; }
    const std::string& role() const { return role_; }
    uint64_t size() const { return size_; }

    // Throws Error("PATH: " + reason).
    [[noreturn]] void fail(std::string_view reason) const;
    // Throws "PATH: truncated ROLE: WHAT needs bytes [off, off+len) but the
    // file is only N bytes" unless the range is inside the file.
    void require(uint64_t offset, uint64_t len, std::string_view what) const;

    // Exactly `len` bytes at `offset` (require()d first).
    void read(uint64_t offset, void* dst, uint64_t len, std::string_view what) const;
    std::vector<uint8_t> read(uint64_t offset, uint64_t len, std::string_view what) const;
    template <typename T>
    T read_obj(uint64_t offset, std::string_view what) const
    {
        static_assert(std::is_trivially_copyable_v<T>);
        T value;
        read(offset, &value, sizeof(T), what);
        return value;
    }
    // Up to `len` bytes at `offset` (fewer at the end of the file).
    std::vector<uint8_t> read_prefix(uint64_t len) const;

    // Copies file bytes [offset, offset+len) to guest [gpa, gpa+len). The
    // caller has checked the guest range; a range outside RAM still throws.
    void copy_to_guest(GuestMemory& mem, uint64_t gpa, uint64_t offset, uint64_t len, std::string_view what) const;

private:
    std::string path_;
    std::string role_;
    UniqueFd fd_;
    uint64_t size_ = 0;
};

}  // namespace kvmini::boot_util
