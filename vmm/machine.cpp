#include "vmm/machine.h"

#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>

#include <chrono>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "devices/i8042.h"
#include "devices/pci/pci_host_bridge.h"
#include "devices/pci/pci_regs.h"
#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/serial_16550a.h"
#include "devices/test/test_devices.h"
#include "irqchip/gsi_layout.h"
#include "irqchip/models/ioapic.h"
#include "vmm/boot/linux_loader.h"
#include "vmm/boot/mptable.h"
#include "vmm/console_watch.h"
#include "vmm/cpuid.h"
#include "vmm/kvm_stats.h"
#include "vmm/run_report.h"
#include "vmm/guest_cmdline.h"
#include "vmm/memory_layout.h"
#include "vmm/terminal.h"
#include "vmm/vcpu_loop.h"
#include "vmm/vcpu_setup.h"

namespace kvmini {

namespace {
// KVM on Intel needs three pages for the real-mode TSS and one for the EPT
// identity map, somewhere the guest does not use: just below the BIOS ROM
// alias at the top of the 4 GiB hole, clear of the IOAPIC and LAPIC.
constexpr uint64_t kTssAddr = 0xfffb'd000;
constexpr uint64_t kIdentityMapAddr = 0xfffb'c000;

// The kernel, initrd and command line into guest RAM, and the MP table that
// describes the machine's CPUs and interrupt wiring.
CpuEntryState load_guest(GuestMemory& memory, const MachineConfig& config, CpuProfile profile)
{
    const KernelFormat format = detect_kernel_format(config.kernel);
    const bool is_linux = format == KernelFormat::kBzImage || format == KernelFormat::kElfVmlinux;
    const std::string cmdline = is_linux ? linux_cmdline(config.cmdline, config.default_params, profile)
                                         : multiboot_cmdline(config.kernel, config.cmdline);
    spdlog::info("kernel command line: '{}'", cmdline);
    const CpuEntryState entry = load_kernel(
        memory, config.kernel, config.initrd.empty() ? std::nullopt : std::optional<std::string>(config.initrd), cmdline);
    MpTableConfig mp;
    mp.cpus = config.cpus;
    // PCI bus 0 when there is a PCI device: the host bridge in slot 0, disks
    // in slots 1.. (create_devices).
    mp.pci_bus = !config.disks.empty();
    for (size_t i = 0; i < config.disks.size(); ++i) {
        const auto slot = static_cast<uint8_t>(i + 1);
        mp.pci_routes.push_back({slot, 0, gsi::pci_intx_gsi(slot, 0)});
    }
    // The IOAPIC version the guest will read from the chip in this mode:
    // KVM's own reports 0x11; kvmini's model has the EOI register (0x20).
    if (config.irqchip != IrqChipMode::kKernel) mp.ioapic_version = IoapicConfig{}.version;
    write_mptable(memory, mp);
    return entry;
}

}  // namespace

Machine::Machine(const MachineConfig& config, int64_t start_ns)
    : start_ns_(start_ns),
      config_(config),
      cpu_profile_(config.cpu_profile.value_or(detect_cpu_profile())),
      memory_(config.mem_mib << 20),
      entry_(load_guest(memory_, config, cpu_profile_)),
      kvm_(config.kvm_device),
      vm_(kvm_),
      irqchip_(make_irqchip(config.irqchip, IrqChipOptions{config.pit_policy})),
      router_(*irqchip_)
{
    KVM_REQUIRE(kvm_, KVM_CAP_USER_MEMORY);
    KVM_REQUIRE(kvm_, KVM_CAP_EXT_CPUID);
    KVM_REQUIRE(kvm_, KVM_CAP_IMMEDIATE_EXIT);
    KVM_REQUIRE(kvm_, KVM_CAP_SET_TSS_ADDR);
    KVM_REQUIRE(kvm_, KVM_CAP_IOEVENTFD);
    KVM_IOCTL(vm_.fd(), KVM_SET_TSS_ADDR, kTssAddr);
    uint64_t identity_map = kIdentityMapAddr;
    if (kvm_.check_extension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0)
        KVM_IOCTL(vm_.fd(), KVM_SET_IDENTITY_MAP_ADDR, &identity_map);
    for (size_t slot = 0; slot < memory_.regions().size(); ++slot) {
        const MemoryRegion& r = memory_.regions()[slot];
        vm_.set_memory_region(static_cast<uint32_t>(slot), r.guest_addr, r.size, r.host);
    }
    irqchip_->create(vm_);
    control_.set_kicker([this](Vcpu& v) { irqchip_->kick(v); });

    create_devices();
    irqchip_->attach_buses(pio_, mmio_);
    create_vcpus();
    set_entry_state(*vcpus_.front(), entry_);
    spdlog::info("kvmini: {} MiB, {} vCPU(s), irqchip {}, CPU profile {}", config_.mem_mib, config_.cpus,
                 irqchip_->mode_name(), to_string(cpu_profile_));
}

Machine::~Machine()
{
    control_.request_stop(1, "kvmini is shutting down");
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    // The terminal's input thread feeds the UART: stop it before the UART goes.
    if (terminal_) terminal_->stop();
}

void Machine::create_devices()
{
    terminal_ = std::make_unique<Terminal>();
    // On a software KVM, say in one line why a Linux guest's init dies (vmm/console_watch.h).
    std::shared_ptr<InitDeathWatch> init_watch;
    if (!host_has_hardware_virtualization())
        init_watch = std::make_shared<InitDeathWatch>([] { spdlog::warn("{}", InitDeathWatch::message()); });
    com1_ = std::make_unique<Serial16550a>(router_.line(gsi::kCom1Irq),
                                           [t = terminal_.get(), init_watch](std::span<const uint8_t> bytes) {
                                               t->write(bytes);
                                               if (init_watch) init_watch->feed(bytes);
                                           });
    pio_.add(uart::kCom1Base, uart::kPortCount, *com1_, "COM1 16550A");
    i8042_ = std::make_unique<I8042>([this] { control_.request_stop(0, "guest reset (i8042)"); });
    i8042_->attach(pio_);
    // Without a PCI device there is no PCI bus: a guest kernel spends about a
    // second of emulated instructions here enumerating one (measured on this
    // project's software-KVM hosts), and QEMU's microvm has none either.
    if (!config_.disks.empty()) {
        pci_ = std::make_unique<PciHostBridge>(pio_, mmio_);
        pio_.add(pci::kConfigAddressPort, pci::kConfigPortsLen, *pci_, "PCI host bridge");
    }
    for (size_t i = 0; i < config_.disks.size(); ++i) {
        auto disk = make_virtio_blk_pci(memory_, parse_disk_option(config_.disks[i]));
        const uint8_t slot = pci_->add_device(*disk, static_cast<uint8_t>(i + 1));
        disk->connect_irqs(router_.line(gsi::pci_intx_gsi(slot, 0)), router_.msi_sender());
        // Queue notifications go straight from KVM to the device's I/O
        // thread (an ioeventfd), without an exit to kvmini; the observer
        // follows the guest moving the BAR.
        disk->set_notify_observer([this](const VirtioNotifyRegion& r, bool added) { set_ioeventfd(r, added); });
        disks_.push_back(std::move(disk));
    }
    if (config_.test_devices) {
        TestDeviceConfig test;
        test.ram_bytes = memory_.size();
        test.cpus = config_.cpus;
        test.exit = [this](int status) {
            control_.request_stop(status, "guest wrote to isa-debug-exit: exit status " + std::to_string(status));
        };
        test_devices_ = std::make_unique<TestDevices>(pio_, router_, test);
    }
}

void Machine::set_ioeventfd(const VirtioNotifyRegion& region, bool added)
{
    kvm_ioeventfd io{};
    io.addr = region.addr;
    io.len = region.len;
    io.fd = region.eventfd;
    if (region.pio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (region.datamatch) {
        io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
        io.datamatch = *region.datamatch;
    }
    if (!added) io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    KVM_IOCTL(vm_.fd(), KVM_IOEVENTFD, &io);
}

void Machine::create_vcpus()
{
    const auto supported = kvm_.supported_cpuid();
    for (unsigned i = 0; i < config_.cpus; ++i) {
        auto vcpu = std::make_unique<Vcpu>(vm_, i);
        auto cpuid = build_vcpu_cpuid(supported, i, config_.cpus, cpu_profile_);
        irqchip_->filter_cpuid(cpuid);
        set_cpuid(*vcpu, cpuid);
        init_msrs(*vcpu);
        init_fpu(*vcpu);
        if (config_.irqchip != IrqChipMode::kUser) init_lapic_virtual_wire(*vcpu);
        irqchip_->attach_vcpu(*vcpu);
        control_.add_vcpu(vcpu.get());
        if (config_.stats && kvm_.check_extension(KVM_CAP_BINARY_STATS_FD) > 0)
            kvm_stats_.push_back(std::make_unique<KvmStats>(vcpu->fd()));
        vcpus_.push_back(std::move(vcpu));
    }
}

int Machine::run(int signal_fd)
{
    Vcpu::install_kick_signal();
    for (const auto& k : kvm_stats_) kvm_stats_start_.push_back(k->read());
    const auto start = std::chrono::steady_clock::now();
    terminal_->start([this](std::span<const uint8_t> bytes) { com1_->receive(bytes); },
                     [this] { control_.request_stop(0, "quit from the console (Ctrl-A x)"); });
    for (auto& vcpu : vcpus_) {
        threads_.emplace_back([this, v = vcpu.get()] {
            VcpuLoop(*v, pio_, mmio_, *irqchip_, memory_, control_, stats_).run();
        });
    }

    pollfd fds[2] = {{control_.event_fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}};
    while (!control_.stopping()) {
        if (::poll(fds, signal_fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR) throw_errno("poll");
        if (signal_fd >= 0 && (fds[1].revents & POLLIN)) {
            signalfd_siginfo info{};
            if (::read(signal_fd, &info, sizeof info) == sizeof info)
                control_.request_stop(128 + static_cast<int>(info.ssi_signo),
                                      fmt::format("stopped by signal {}", strsignal(info.ssi_signo)));
        }
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
    terminal_->stop();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("kvmini: {} after {:.2f} s", control_.reason(), seconds);
    if (config_.stats) write_report(seconds);
    return control_.exit_status();
}

RunReport Machine::collect_report(double seconds) const
{
    RunReport r;
    r.irqchip = irqchip_->mode_name();
    r.vcpus = config_.cpus;
    r.wall_s = seconds;
    r.exit_status = control_.exit_status();
    r.stop_reason = control_.reason();
    for (size_t reason = 0; reason < ExitStats::kReasons; ++reason)
        if (auto n = stats_.by_reason[reason].load()) r.exits.emplace_back(exit_reason_name(reason), n);
    r.completions = {{"kicks", stats_.kicks.load()},
                     {"int3_completed", stats_.int3_completions.load()},
                     {"intn_completed", stats_.intn_completions.load()},
                     {"fwait_completed", stats_.fwait_completions.load()}};
    // The ten busiest I/O ports.
    std::vector<std::pair<uint64_t, uint16_t>> ports;
    for (uint32_t p = 0; p < 0x10000; ++p)
        if (auto n = (*stats_.by_port)[p].load()) ports.emplace_back(n, static_cast<uint16_t>(p));
    std::sort(ports.rbegin(), ports.rend());
    for (size_t i = 0; i < ports.size() && i < 10; ++i) r.ports.emplace_back(ports[i].second, ports[i].first);
    r.interrupts = irqchip_->stats();
    r.unclaimed = {{"pio_reads", pio_.unclaimed_reads()},
                   {"pio_writes", pio_.unclaimed_writes()},
                   {"mmio_reads", mmio_.unclaimed_reads()},
                   {"mmio_writes", mmio_.unclaimed_writes()}};
    // KVM's own cumulative counters that moved during the run, per vCPU,
    // with KVM's names (KVM_GET_STATS_FD).
    r.kvm_counters_available = !kvm_stats_.empty();
    for (size_t i = 0; i < kvm_stats_.size() && i < kvm_stats_start_.size(); ++i) {
        const auto& descs = kvm_stats_[i]->descriptors();
        const std::vector<uint64_t> now = kvm_stats_[i]->read();
        RunReport::Counters moved;
        for (size_t d = 0; d < descs.size(); ++d) {
            if (!KvmStats::is_cumulative(descs[d])) continue;
            if (const uint64_t delta = now[d] - kvm_stats_start_[i][d]) moved.emplace_back(descs[d].name, delta);
        }
        r.kvm_counters.push_back(std::move(moved));
    }
    // Peak RSS and the guest RAM that is resident (pages the guest or the
    // loaders touched): their difference is what kvmini itself costs.
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    const uint64_t peak = static_cast<uint64_t>(usage.ru_maxrss) * 1024;
    const long page = ::sysconf(_SC_PAGESIZE);
    uint64_t resident = 0;
    std::vector<unsigned char> pages;
    for (const MemoryRegion& region : memory_.regions()) {
        pages.resize((region.size + page - 1) / page);
        if (::mincore(region.host, region.size, pages.data()) == 0)
            for (unsigned char p : pages) resident += (p & 1) ? page : 0;
    }
    r.peak_rss_mib = peak / 1048576.0;
    r.guest_resident_mib = resident / 1048576.0;
    if (const int64_t first = stats_.first_run_ns.load()) r.startup_ms = (first - start_ns_) / 1e6;
    return r;
}

void Machine::write_report(double seconds) const
{
    const RunReport r = collect_report(seconds);
    const std::string text =
        (config_.stats_format == StatsFormat::kJson ? format_report_json(r) : format_report_text(r)) + "\n";
    if (config_.stats_file.empty()) {
        fmt::print(stderr, "{}", text);
        return;
    }
    std::FILE* f = std::fopen(config_.stats_file.c_str(), "w");
    if (!f || std::fputs(text.c_str(), f) < 0 || std::fclose(f) != 0)
        spdlog::error("--stats-file {}: cannot write: {}", config_.stats_file, std::strerror(errno));
}

}  // namespace kvmini
