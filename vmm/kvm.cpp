#include "vmm/kvm.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>


#include <spdlog/fmt/fmt.h>

#include "vmm/error.h"
#include "vmm/kvm_list.h"

namespace kvmini {

namespace {
// The signal that kicks a vCPU thread out of KVM_RUN (Vcpu::kick).
int kick_signal() { return SIGRTMIN; }
}  // namespace

int checked_ioctl(int fd, unsigned long request, unsigned long arg, const char* name)
{
    int r;
    do {
        r = ::ioctl(fd, request, arg);
    } while (r < 0 && errno == EINTR);
    if (r < 0) throw_errno(name);
    return r;
}

Kvm::Kvm(const std::string& path)
{
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        const int err = errno;
        if (err == ENOENT)
            throw Error(fmt::format("{} does not exist: this host has no KVM (load kvm_intel/kvm_amd, or enable "
                                    "nested virtualization)",
                                    path));
        if (err == EACCES || err == EPERM)
            throw Error(fmt::format("{}: permission denied: add your user to the kvm group "
                                    "(sudo usermod -aG kvm $USER, then log in again) or run as root",
                                    path));
        throw_errno("open " + path, err);
    }
    fd_.reset(fd);
    const int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION)
        throw Error(fmt::format("{}: KVM API version {} (kvmini needs {})", path, version, KVM_API_VERSION));
    vcpu_mmap_size_ = KVM_IOCTL(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
}

int Kvm::check_extension(long cap) const { return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap); }

void Kvm::require(long cap, const char* name) const
{
    if (check_extension(cap) <= 0) throw Error(fmt::format("KVM capability {} is not supported by this host's KVM", name));
}

std::vector<kvm_cpuid_entry2> Kvm::supported_cpuid() const
{
    for (uint32_t n = 128; n <= 4096; n *= 2) {
        KvmList<kvm_cpuid_entry2> cpuid(n);
        if (::ioctl(fd_.get(), kvm_ioctl::kGetSupportedCpuid, cpuid.data()) == 0) return cpuid.entries();
        if (errno != E2BIG) throw_errno("KVM_GET_SUPPORTED_CPUID");
    }
    throw Error("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

Vm::Vm(const Kvm& kvm) : kvm_(kvm)
{
    int fd;
    do {
        fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw_errno("KVM_CREATE_VM");
    fd_.reset(fd);
}

void Vm::set_memory_region(uint32_t slot, uint64_t guest_addr, uint64_t size, void* host)
{
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = guest_addr;
    region.memory_size = size;
    region.userspace_addr = reinterpret_cast<uint64_t>(host);
    KVM_IOCTL(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region);
}

Vcpu::Vcpu(Vm& vm, unsigned index) : vm_(vm), index_(index)
{
    fd_.reset(KVM_IOCTL(vm.fd(), KVM_CREATE_VCPU, index));
    run_size_ = static_cast<size_t>(vm.kvm().vcpu_mmap_size());
    void* p = ::mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (p == MAP_FAILED) throw_errno(fmt::format("mmap of vCPU {} kvm_run", index));
    run_ = static_cast<kvm_run*>(p);
    reset_regs_ = regs();
    reset_sregs_ = sregs();
    const int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
    tsc_khz_ = khz > 0 ? static_cast<uint32_t>(khz) : 0;
}

Vcpu::~Vcpu()
{
    if (run_) ::munmap(run_, run_size_);
}

kvm_regs Vcpu::regs() const
{
    kvm_regs r{};
    KVM_IOCTL(fd_.get(), KVM_GET_REGS, &r);
    return r;
}
void Vcpu::set_regs(const kvm_regs& r) { KVM_IOCTL(fd_.get(), KVM_SET_REGS, &r); }
kvm_sregs Vcpu::sregs() const
{
    kvm_sregs s{};
    KVM_IOCTL(fd_.get(), KVM_GET_SREGS, &s);
    return s;
}
void Vcpu::set_sregs(const kvm_sregs& s) { KVM_IOCTL(fd_.get(), KVM_SET_SREGS, &s); }

void Vcpu::bind_to_current_thread()
{
    thread_ = ::pthread_self();
    bound_.store(true, std::memory_order_release);
}

void Vcpu::kick()
{
    // immediate_exit closes the race with a vCPU about to enter KVM_RUN; the
    // signal interrupts one already inside it.
    __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (bound_.load(std::memory_order_acquire)) ::pthread_kill(thread_, kick_signal());
}

bool Vcpu::inject_interrupt(uint8_t vector)
{
    kvm_interrupt irq{};
    irq.irq = vector;
    if (::ioctl(fd_.get(), KVM_INTERRUPT, &irq) == 0) return true;
    if (errno == EEXIST) return false;
    throw_errno("KVM_INTERRUPT");
}

void Vcpu::inject_nmi() { KVM_IOCTL(fd_.get(), KVM_NMI, 0); }

void Vcpu::reset_to_init_state(uint64_t apic_base)
{
    // SDM vol. 3A 9.1.1: INIT resets the registers but keeps IA32_APIC_BASE.
    kvm_sregs s = reset_sregs_;
    s.apic_base = apic_base;
    set_sregs(s);
    set_regs(reset_regs_);
}

void Vcpu::start_at_sipi(uint8_t vector, uint64_t apic_base)
{
    // SDM vol. 3A 9.4.4.1: real mode at CS = vector << 8, IP = 0, from the
    // INIT state.
    kvm_sregs s = reset_sregs_;
    s.cs.selector = static_cast<uint16_t>(vector << 8);
    s.cs.base = static_cast<uint64_t>(vector) << 12;
    s.cs.limit = 0xffff;
    s.apic_base = apic_base;
    set_sregs(s);
    kvm_regs r = reset_regs_;
    r.rip = 0;
    set_regs(r);
}

void Vcpu::set_apic_base(uint64_t apic_base)
{
    kvm_sregs s = sregs();
    s.apic_base = apic_base;
    set_sregs(s);
}

uint64_t Vcpu::guest_tsc()
{
    constexpr uint32_t kMsrTsc = 0x10;
    kvm_msr_entry e{};
    e.index = kMsrTsc;
    KvmList<kvm_msr_entry> msrs{std::span<const kvm_msr_entry>(&e, 1)};
    checked_ioctl(fd_.get(), kvm_ioctl::kGetMsrs, reinterpret_cast<unsigned long>(msrs.data()), "KVM_GET_MSRS");
    return msrs.entries().at(0).data;
}

void Vcpu::install_kick_signal()
{
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    if (::sigaction(kick_signal(), &sa, nullptr) != 0) throw_errno("sigaction(vCPU kick signal)");
}

}  // namespace kvmini
