// Helpers shared by the loader tests: little-endian writers that build
// kernel images byte by byte at spec offsets, and a temporary directory for
// the image files.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvmini::boot_test {

using Bytes = std::vector<uint8_t>;

inline void put8(Bytes& b, size_t off, uint8_t v) { b.at(off) = v; }
inline void put16(Bytes& b, size_t off, uint16_t v)
{
    for (int i = 0; i < 2; ++i) b.at(off + i) = static_cast<uint8_t>(v >> (8 * i));
}
inline void put32(Bytes& b, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; ++i) b.at(off + i) = static_cast<uint8_t>(v >> (8 * i));
}
inline void put64(Bytes& b, size_t off, uint64_t v)
{
    for (int i = 0; i < 8; ++i) b.at(off + i) = static_cast<uint8_t>(v >> (8 * i));
}

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

}  // namespace kvmini::boot_test
