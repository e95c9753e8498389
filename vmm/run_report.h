// What one run of a machine did, gathered once when it stops, and shown as
// text (kvmini run --stats) or as JSON (--stats=json; the fields and names
// are the same, described by tests/schema/run-report.schema.json) for
// scripts and the mode comparison.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "irqchip/irqchip.h"

namespace kvmini {

struct RunReport {
    using Counters = std::vector<std::pair<std::string, uint64_t>>;  // name, count; in a stable order

    std::string irqchip;
    unsigned vcpus = 0;
    double wall_s = 0;
    int exit_status = 0;
    std::string stop_reason;
    Counters exits;                                      // kvmini's exits by reason, non-zero ones
    Counters completions;                                // kicks, int3/intn/fwait completed
    std::vector<std::pair<uint16_t, uint64_t>> ports;   // the busiest I/O ports, at most 10
    IrqChipStats interrupts;
    Counters unclaimed;                                  // pio/mmio reads/writes nobody claimed
    bool kvm_counters_available = false;
    std::vector<Counters> kvm_counters;                  // per vCPU: KVM's own, deltas over the run
    double peak_rss_mib = 0, guest_resident_mib = 0;
    std::optional<double> startup_ms;                    // main() to the first KVM_RUN
};

std::string format_report_text(const RunReport& r);
std::string format_report_json(const RunReport& r);
// A JSON string literal (quotes, backslashes and control characters escaped).
std::string json_string(const std::string& s);

}  // namespace kvmini
