// The CPUID each vCPU sees: KVM's supported CPUID, given per-vCPU APIC IDs and
// topology, and filtered by a profile.
//
// Profile "safe" hides what this project's software-KVM hosts cannot execute
// (../shared/HOST-KVM.md): XSAVE (XRSTOR fails to emulate), POPCNT, SMAP/SMEP
// (CLAC/STAC), the KVM paravirt features that work by hypercall, and shows
// XSAVEERPTR so Linux skips the FNCLEX/EMMS/FILD sequence before FXRSTOR. "host" passes KVM's supported CPUID through.
#pragma once

#include <linux/kvm.h>

#include <string>
#include <vector>

namespace kvmini {

enum class CpuProfile { kHost, kSafe };

// CPUID bits by leaf (Intel SDM vol. 2A, CPUID; AMD APM vol. 3, E.4.7 for 0x80000008).
namespace cpuid_bits {
inline constexpr uint32_t kLeaf1EcxPopcnt = 1u << 23;
inline constexpr uint32_t kLeaf1EcxTscDeadline = 1u << 24;
inline constexpr uint32_t kLeaf1EcxXsave = 1u << 26;
inline constexpr uint32_t kLeaf1EcxOsxsave = 1u << 27;
inline constexpr uint32_t kLeaf1EcxAvx = 1u << 28;
inline constexpr uint32_t kLeaf1EcxHypervisor = 1u << 31;
inline constexpr uint32_t kLeaf1EdxHtt = 1u << 28;
inline constexpr uint32_t kLeaf1EcxVmx = 1u << 5;
inline constexpr uint32_t kLeaf7EbxSmep = 1u << 7;
inline constexpr uint32_t kLeaf7EbxSmap = 1u << 20;
inline constexpr uint32_t kExt1EcxSvm = 1u << 2;            // 0x80000001
inline constexpr uint32_t kExt8EbxXsaveErPtr = 1u << 2;     // 0x80000008
// KVM paravirt features, leaf 0x40000001 EAX (Linux Documentation/virt/kvm/x86/cpuid.rst).
// These three make the guest kernel issue hypercalls (VMCALL/VMMCALL), which
// the software KVM here cannot complete from guest kernel mode: an AP stuck
// on the PV send-IPI hypercall hung every 2-vCPU boot.
inline constexpr uint32_t kKvmLeafFeatures = 0x40000001;
inline constexpr uint32_t kKvmFeaturePvUnhalt = 1u << 7;
inline constexpr uint32_t kKvmFeaturePvSendIpi = 1u << 11;
inline constexpr uint32_t kKvmFeaturePvSchedYield = 1u << 13;
inline constexpr uint32_t kKvmHypercallFeatures = kKvmFeaturePvUnhalt | kKvmFeaturePvSendIpi | kKvmFeaturePvSchedYield;
}  // namespace cpuid_bits

// The profile that fits this host: kSafe where the host CPU shows neither VMX
// nor SVM (KVM is then software-based and cannot complete those
// instructions), kHost otherwise.
CpuProfile detect_cpu_profile();
bool host_has_hardware_virtualization();
std::string to_string(CpuProfile profile);

// What the safe profile also switches off in a Linux guest, on its command
// line. Measured on this project's kvm_pvm hosts: KVM_SET_CPUID2 succeeds, but
// KVM_GET_CPUID2 reads back leaf 1 ECX/EDX and leaf 7 with the host's feature
// bits, and the guest's CPUID shows them (a kernel sets CR4.OSXSAVE/SMEP/SMAP
// and then stops on XRSTOR). CPUID alone cannot hide them there, so the
// profile switches the same features off in Linux itself. Harmless where
// CPUID already hid them.
inline constexpr const char* kSafeProfileLinuxFlags[] = {"noxsave"};
inline constexpr const char* kSafeProfileClearedCpuFeatures[] = {"smap", "popcnt", "xsave"};

// The command line a Linux guest gets under `profile`: for the safe profile,
// `cmdline` plus the flags above, and the features merged into its
// clearcpuid= list (Linux reads only the first clearcpuid=).
std::string linux_cmdline_for_profile(const std::string& cmdline, CpuProfile profile);

// Pure: the CPUID table for vCPU `index` of `cpu_count`.
std::vector<kvm_cpuid_entry2> build_vcpu_cpuid(const std::vector<kvm_cpuid_entry2>& supported, unsigned index,
                                               unsigned cpu_count, CpuProfile profile);

}  // namespace kvmini
