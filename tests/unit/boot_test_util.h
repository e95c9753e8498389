// Helpers shared by the loader tests: little-endian writers that build
// kernel images byte by byte at spec offsets, a temporary directory for the
// image files, readers of guest memory and checks of Error messages.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "devices/le.h"
#include "vmm/error.h"
#include "vmm/guest_memory.h"

namespace kvmini::boot_test {

using Bytes = std::vector<uint8_t>;

inline void put8(Bytes& b, size_t off, uint8_t v) { b.at(off) = v; }
// Bytes [off, off + n) of b; std::out_of_range past its end, as b.at().
inline std::span<uint8_t> bytes_at(Bytes& b, size_t off, size_t n)
{
    b.at(off + n - 1);
    return std::span<uint8_t>(b).subspan(off, n);
}
inline void put16(Bytes& b, size_t off, uint16_t v) { le::store(bytes_at(b, off, 2), v); }
inline void put32(Bytes& b, size_t off, uint32_t v) { le::store(bytes_at(b, off, 4), v); }
inline void put64(Bytes& b, size_t off, uint64_t v) { le::store(bytes_at(b, off, 8), v); }

class TempDir {
public:
    TempDir()
    {
        std::string tmpl = (std::filesystem::temp_directory_path() / "kvmini-boot-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    std::string write(const std::string& name, const Bytes& data) const
    {
        const std::string p = path_ + "/" + name;
        std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), data.size());
        return p;
    }
    std::string write_text(const std::string& name, const std::string& text) const
    {
        return write(name, Bytes(text.begin(), text.end()));
    }
    // A file of `size` bytes that takes no disk space.
    std::string sparse(const std::string& name, uint64_t size) const
    {
        const std::string p = path_ + "/" + name;
        std::ofstream(p, std::ios::binary).close();
        std::filesystem::resize_file(p, size);
        return p;
    }
    std::string path(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Guest memory and error checks the loader tests make.
// Runs f and returns the Error's text; fails the test if nothing is thrown.
inline std::string error_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected kvmini::Error";
    return "";
}

inline void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts)
{
    const std::string msg = error_of(f);
    for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
}

template <typename T>
T at(const GuestMemory& mem, uint64_t gpa)
{
    const std::optional<T> v = mem.read_obj<T>(gpa);
    EXPECT_TRUE(v.has_value()) << "guest address " << gpa << " not in RAM";
    return v.value_or(T{});
}

inline Bytes guest_bytes(const GuestMemory& mem, uint64_t gpa, uint64_t len)
{
    Bytes b(len);
    EXPECT_TRUE(mem.read(gpa, b.data(), len));
    return b;
}

inline std::string guest_string(const GuestMemory& mem, uint64_t gpa)
{
    std::string s;
    for (char c; (c = static_cast<char>(at<uint8_t>(mem, gpa))) != 0 && s.size() < 70000; ++gpa) s += c;
    return s;
}

}  // namespace kvmini::boot_test
