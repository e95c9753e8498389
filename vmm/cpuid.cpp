#include "vmm/cpuid.h"

#include <cpuid.h>

#include <algorithm>
#include <bit>
#include <string_view>

namespace kvmini {

using namespace cpuid_bits;

bool host_has_hardware_virtualization()
{
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & kLeaf1EcxVmx)) return true;
    if (__get_cpuid(0x80000001, &a, &b, &c, &d) && (c & kExt1EcxSvm)) return true;
    return false;
}

CpuProfile detect_cpu_profile() { return host_has_hardware_virtualization() ? CpuProfile::kHost : CpuProfile::kSafe; }

std::string to_string(CpuProfile profile) { return profile == CpuProfile::kSafe ? "safe" : "host"; }

std::string linux_cmdline_for_profile(const std::string& cmdline, CpuProfile profile)
{
    if (profile != CpuProfile::kSafe) return cmdline;
    // Split into words, find (or add) the clearcpuid= word, add what is missing.
    std::vector<std::string> words;
    for (size_t pos = 0; pos < cmdline.size();) {
        const size_t end = std::min(cmdline.find(' ', pos), cmdline.size());
        if (end > pos) words.push_back(cmdline.substr(pos, end - pos));
        pos = end + 1;
    }
    auto has_word = [&](const std::string& w) { return std::find(words.begin(), words.end(), w) != words.end(); };
    for (const char* flag : kSafeProfileLinuxFlags)
        if (!has_word(flag)) words.emplace_back(flag);
    constexpr std::string_view kClear = "clearcpuid=";
    auto clear = std::find_if(words.begin(), words.end(), [&](const std::string& w) { return w.starts_with(kClear); });
    if (clear == words.end()) clear = words.insert(words.end(), std::string(kClear));
    for (const char* feature : kSafeProfileClearedCpuFeatures) {
        const std::string list = "," + clear->substr(kClear.size()) + ",";
        if (list.find("," + std::string(feature) + ",") != std::string::npos) continue;
        if (clear->size() > kClear.size()) *clear += ",";
        *clear += feature;
    }
    std::string out;
    for (const std::string& w : words) out += (out.empty() ? "" : " ") + w;
    return out;
}

std::vector<kvm_cpuid_entry2> build_vcpu_cpuid(const std::vector<kvm_cpuid_entry2>& supported, unsigned index,
                                               unsigned cpu_count, CpuProfile profile)
{
    const bool safe = profile == CpuProfile::kSafe;
    // Bits needed to number the cores of one package (APIC ID = vCPU index).
    const uint32_t core_bits = cpu_count > 1 ? std::bit_width(cpu_count - 1) : 0;
    std::vector<kvm_cpuid_entry2> out;
    out.reserve(supported.size());
    for (kvm_cpuid_entry2 e : supported) {
        switch (e.function) {
        case 1:
            e.ebx = (e.ebx & 0x0000ffff) | (index << 24) | ((cpu_count & 0xff) << 16);
            if (cpu_count > 1) e.edx |= kLeaf1EdxHtt; else e.edx &= ~kLeaf1EdxHtt;
            e.ecx |= kLeaf1EcxHypervisor;
            if (safe) e.ecx &= ~(kLeaf1EcxXsave | kLeaf1EcxOsxsave | kLeaf1EcxAvx | kLeaf1EcxPopcnt);
            break;
        case 4:  // deterministic cache parameters: cores per package in EAX[31:26]
            e.eax = (e.eax & 0x03ffffff) | (((1u << core_bits) - 1) << 26);
            break;
        case 7:
            if (safe && e.index == 0) e.ebx &= ~(kLeaf7EbxSmep | kLeaf7EbxSmap);
            break;
        case 0xb:
        case 0x1f:  // extended topology: level 0 = SMT (1 thread), level 1 = core
            if (e.index == 0) {
                e.eax = 0;
                e.ebx = 1;
                e.ecx = (1u << 8) | 0;
            } else if (e.index == 1) {
                e.eax = core_bits;
                e.ebx = cpu_count;
                e.ecx = (2u << 8) | 1;
            } else {
                e.eax = e.ebx = 0;
                e.ecx = e.index;
            }
            e.edx = index;
            break;
        case 0xd:  // XSAVE state enumeration: nothing to enumerate without XSAVE
            if (safe) e.eax = e.ebx = e.ecx = e.edx = 0;
            break;
        case 0x80000008:
            if (safe) e.ebx |= kExt8EbxXsaveErPtr;
            // AMD: number of cores - 1 in ECX[7:0], APIC ID core bits in ECX[15:12].
            e.ecx = (e.ecx & ~0xf0ffu) | (core_bits << 12) | ((cpu_count - 1) & 0xff);
            break;
        case kKvmLeafFeatures:
            if (safe) e.eax &= ~kKvmHypercallFeatures;
            break;
        case 0x8000001e:  // AMD extended APIC ID / compute unit / node
            e.eax = index;
            e.ebx = index & 0xff;
            e.ecx = 0;
            break;
        default:
            break;
        }
        out.push_back(e);
    }
    return out;
}

}  // namespace kvmini
