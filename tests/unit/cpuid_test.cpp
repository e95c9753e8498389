#include <gtest/gtest.h>

#include "vmm/cpuid.h"

using namespace kvmini;
using namespace kvmini::cpuid_bits;

namespace {
kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t idx, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    kvm_cpuid_entry2 e{};
    e.function = fn;
    e.index = idx;
    e.eax = a;
    e.ebx = b;
    e.ecx = c;
    e.edx = d;
    return e;
}

std::vector<kvm_cpuid_entry2> sample()
{
    return {
        leaf(1, 0, 0x00a00f11, 0xff0b0800, kLeaf1EcxXsave | kLeaf1EcxPopcnt | kLeaf1EcxAvx | 1, 0x178bfbff),
        leaf(7, 0, 0, kLeaf7EbxSmap | kLeaf7EbxSmep | 1, 0, 0),
        leaf(0xb, 0, 1, 2, 0x100, 9),
        leaf(0xb, 1, 4, 16, 0x201, 9),
        leaf(0xd, 0, 7, 0x340, 0x340, 0),
        leaf(0x80000008, 0, 0x3030, 0, 0x0000700f, 0),
        leaf(kKvmLeafFeatures, 0, 0x01007efb, 0, 0, 0),
    };
}

const kvm_cpuid_entry2& find(const std::vector<kvm_cpuid_entry2>& v, uint32_t fn, uint32_t idx = 0)
{
    for (auto& e : v)
        if (e.function == fn && e.index == idx) return e;
    throw std::runtime_error("leaf missing");
}
}  // namespace

TEST(Cpuid, SafeProfileHidesWhatSoftwareKvmCannotRun)
{
    const auto out = build_vcpu_cpuid(sample(), 0, 1, CpuProfile::kSafe);
    const auto& l1 = find(out, 1);
    EXPECT_EQ(l1.ecx & kLeaf1EcxXsave, 0u);
    EXPECT_EQ(l1.ecx & kLeaf1EcxPopcnt, 0u);
    EXPECT_EQ(l1.ecx & kLeaf1EcxAvx, 0u);
    EXPECT_EQ(l1.ecx & 1u, 1u) << "unrelated bits stay";
    EXPECT_NE(l1.ecx & kLeaf1EcxHypervisor, 0u);
    const auto& l7 = find(out, 7);
    EXPECT_EQ(l7.ebx & (kLeaf7EbxSmap | kLeaf7EbxSmep), 0u);
    EXPECT_EQ(l7.ebx & 1u, 1u);
    EXPECT_NE(find(out, 0x80000008).ebx & kExt8EbxXsaveErPtr, 0u);
    EXPECT_EQ(find(out, 0xd).eax, 0u);
    EXPECT_EQ(find(out, kKvmLeafFeatures).eax, 0x01007efbu & ~(kKvmFeaturePvSendIpi | kKvmFeaturePvSchedYield |
                                                               kKvmFeaturePvUnhalt));
}

TEST(Cpuid, HostProfileKeepsKvmsFeatures)
{
    const auto out = build_vcpu_cpuid(sample(), 0, 1, CpuProfile::kHost);
    EXPECT_NE(find(out, 1).ecx & kLeaf1EcxXsave, 0u);
    EXPECT_NE(find(out, 7).ebx & kLeaf7EbxSmap, 0u);
    EXPECT_EQ(find(out, 0xd).eax, 7u);
    EXPECT_EQ(find(out, kKvmLeafFeatures).eax, 0x01007efbu);
}

TEST(Cpuid, EachVcpuGetsItsApicIdAndTheTopology)
{
    const auto cpu0 = build_vcpu_cpuid(sample(), 0, 4, CpuProfile::kHost);
    const auto cpu3 = build_vcpu_cpuid(sample(), 3, 4, CpuProfile::kHost);
    EXPECT_EQ(find(cpu0, 1).ebx >> 24, 0u);
    EXPECT_EQ(find(cpu3, 1).ebx >> 24, 3u);
    EXPECT_EQ((find(cpu3, 1).ebx >> 16) & 0xff, 4u);
    EXPECT_EQ(find(cpu3, 1).ebx & 0xffff, 0x0800u) << "brand index and CLFLUSH size stay";
    EXPECT_NE(find(cpu3, 1).edx & kLeaf1EdxHtt, 0u);
    EXPECT_EQ(find(cpu3, 0xb, 0).edx, 3u);
    EXPECT_EQ(find(cpu3, 0xb, 1).edx, 3u);
    EXPECT_EQ(find(cpu3, 0xb, 1).ebx, 4u);
    EXPECT_EQ(find(cpu3, 0xb, 1).eax, 2u) << "4 cores need 2 bits of APIC ID";
    EXPECT_EQ(find(cpu3, 0x80000008).ecx & 0xff, 3u);
}

TEST(Cpuid, SingleCpuHasNoHtt)
{
    const auto out = build_vcpu_cpuid(sample(), 0, 1, CpuProfile::kHost);
    EXPECT_EQ(find(out, 1).edx & kLeaf1EdxHtt, 0u);
    EXPECT_EQ(find(out, 0xb, 1).eax, 0u);
}

TEST(Cpuid, SafeProfileSwitchesTheFeaturesOffInLinuxToo)
{
    EXPECT_EQ(linux_cmdline_for_profile("console=ttyS0", CpuProfile::kSafe),
              "console=ttyS0 noxsave clearcpuid=smap,popcnt,xsave");
    EXPECT_EQ(linux_cmdline_for_profile("", CpuProfile::kSafe), "noxsave clearcpuid=smap,popcnt,xsave");
    EXPECT_EQ(linux_cmdline_for_profile("console=ttyS0", CpuProfile::kHost), "console=ttyS0");
    // Applying it twice changes nothing.
    const std::string once = linux_cmdline_for_profile("a  b", CpuProfile::kSafe);
    EXPECT_EQ(once, "a b noxsave clearcpuid=smap,popcnt,xsave");
    EXPECT_EQ(linux_cmdline_for_profile(once, CpuProfile::kSafe), once);
}

TEST(Cpuid, SafeProfileMergesIntoTheUsersClearcpuidList)
{
    EXPECT_EQ(linux_cmdline_for_profile("x clearcpuid=tsc_deadline_timer,popcnt noapictimer", CpuProfile::kSafe),
              "x clearcpuid=tsc_deadline_timer,popcnt,smap,xsave noapictimer noxsave");
}
