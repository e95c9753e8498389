// A machine assembled from a MachineConfig: KVM VM, guest RAM, irqchip
// backend and routing layer, buses and devices, the loaded guest and its
// vCPU threads. Members are declared in the order they are built, so they are
// torn down in reverse (threads first, /dev/kvm last).
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "devices/bus.h"
#include "irqchip/irq_router.h"
#include "irqchip/irqchip.h"
#include "vmm/boot/entry_state.h"
#include "vmm/exit_stats.h"
#include "vmm/guest_memory.h"
#include "vmm/kvm.h"
#include "vmm/machine_config.h"
#include "vmm/run_report.h"
#include "vmm/vm_control.h"

namespace kvmini {

class Serial16550a;
class I8042;
class Terminal;
class TestDevices;
class PciHostBridge;
class VirtioPciTransport;
class KvmStats;
struct VirtioNotifyRegion;

class Machine {
public:
    // Builds everything and loads the guest; throws Error with the reason.
    // `start_ns`: when kvmini started (steady clock), for the start-up figure.
    Machine(const MachineConfig& config, int64_t start_ns);
    ~Machine();

    // Runs the guest until it stops (power-off, reset, failure, Ctrl-A x, a
    // signal in `stop_signals`). Returns kvmini's exit status.
    int run(int signal_fd);
    std::string stop_reason() const { return control_.reason(); }

private:
    void create_devices();
    void create_vcpus();
    void set_ioeventfd(const VirtioNotifyRegion& region, bool added);
    RunReport collect_report(double seconds) const;
    void write_report(double seconds) const;

    int64_t start_ns_;
    MachineConfig config_;
    CpuProfile cpu_profile_;
    GuestMemory memory_;
    CpuEntryState entry_;  // the guest is loaded (and its files checked) before KVM is touched
    Kvm kvm_;
    Vm vm_;
    std::unique_ptr<IrqChip> irqchip_;
    IrqRouter router_;
    Bus pio_{"port I/O"};
    Bus mmio_{"MMIO"};
    VmControl control_;
    ExitStats stats_;
    std::unique_ptr<Terminal> terminal_;
    std::unique_ptr<Serial16550a> com1_;
    std::unique_ptr<I8042> i8042_;
    std::unique_ptr<TestDevices> test_devices_;
    std::unique_ptr<PciHostBridge> pci_;
    std::vector<std::unique_ptr<VirtioPciTransport>> disks_;  // slots 1.. in -d order
    std::vector<std::unique_ptr<Vcpu>> vcpus_;
    // KVM's own counters per vCPU (--stats, where KVM has binary stats),
    // and their values when the vCPUs started.
    std::vector<std::unique_ptr<KvmStats>> kvm_stats_;
    std::vector<std::vector<uint64_t>> kvm_stats_start_;
    std::vector<std::thread> threads_;
};

}  // namespace kvmini
