// kvmini's one error type. Anything that stops kvmini (a bad file, a failed
// ioctl, a missing capability) throws Error with a one-line reason; main()
// prints it and exits non-zero. Guest misbehaviour is never an Error: devices
// count it and carry on.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kvmini {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// "WHAT: <strerror(errno)>", for a failed system call or ioctl.
[[noreturn]] inline void throw_errno(std::string_view what, int err = errno)
{
    throw Error(std::string(what) + ": " + std::strerror(err));
}

}  // namespace kvmini
