#include "vmm/run_report.h"

#include <spdlog/fmt/fmt.h>

namespace kvmini {

std::string json_string(const std::string& s)
{
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20)
                out += fmt::format("\\u{:04x}", c);
            else
                out += ch;
        }
    }
    return out + "\"";
}

namespace {

std::string json_counters(const RunReport::Counters& counters)
{
    std::string out = "{";
    for (size_t i = 0; i < counters.size(); ++i)
        out += fmt::format("{}{}: {}", i ? ", " : "", json_string(counters[i].first), counters[i].second);
    return out + "}";
}

std::string text_counters(const RunReport::Counters& counters)
{
    std::string out;
    for (const auto& [name, n] : counters) out += fmt::format(" {}={}", name, n);
    return out;
}

}  // namespace

std::string format_report_text(const RunReport& r)
{
    std::string out = fmt::format("statistics (irqchip {}):\n  exits:{}", r.irqchip, text_counters(r.exits));
    out += "\n ";
    for (const auto& [name, n] : r.completions) out += fmt::format(" {}={}", name, n);
    out += "\n  busiest ports:";
    for (const auto& [port, n] : r.ports) out += fmt::format(" {:#x}={}", port, n);
    const IrqChipStats& irq = r.interrupts;
    out += fmt::format("\n  interrupts: gsi_raises={} msis={} injected={} eois={} undeliverable={}", irq.gsi_raises,
                       irq.msis, irq.injections, irq.eois, irq.undeliverable);
    for (const std::string& line : irq.details) out += "\n  " + line;
    out += "\n  unclaimed:" + text_counters(r.unclaimed);
    if (!r.kvm_counters_available) out += "\n  KVM's own counters: not available (no KVM_CAP_BINARY_STATS_FD)";
    for (size_t i = 0; i < r.kvm_counters.size(); ++i)
        out += fmt::format("\n  KVM vCPU {}:{}", i, text_counters(r.kvm_counters[i]));
    out += fmt::format("\n  memory: peak RSS {:.1f} MiB, guest RAM resident {:.1f} MiB, kvmini beyond it {:.1f} MiB",
                       r.peak_rss_mib, r.guest_resident_mib,
                       r.peak_rss_mib > r.guest_resident_mib ? r.peak_rss_mib - r.guest_resident_mib : 0.0);
    if (r.startup_ms) out += fmt::format("\n  start-up: main() to the first KVM_RUN {:.2f} ms", *r.startup_ms);
    return out;
}

std::string format_report_json(const RunReport& r)
{
    const IrqChipStats& irq = r.interrupts;
    std::string ports = "{";
    for (size_t i = 0; i < r.ports.size(); ++i)
        ports += fmt::format("{}\"{:#x}\": {}", i ? ", " : "", r.ports[i].first, r.ports[i].second);
    ports += "}";
    std::string details = "[";
    for (size_t i = 0; i < irq.details.size(); ++i) details += (i ? ", " : "") + json_string(irq.details[i]);
    details += "]";
    std::string kvm = "[";
    for (size_t i = 0; i < r.kvm_counters.size(); ++i) kvm += (i ? ", " : "") + json_counters(r.kvm_counters[i]);
    kvm += "]";
    return fmt::format(
        "{{\"irqchip\": {}, \"vcpus\": {}, \"wall_s\": {:.3f}, \"exit_status\": {}, \"stop_reason\": {}, "
        "\"exits\": {}, \"completions\": {}, \"busiest_ports\": {}, "
        "\"interrupts\": {{\"gsi_raises\": {}, \"msis\": {}, \"injected\": {}, \"eois\": {}, \"undeliverable\": {}, "
        "\"details\": {}}}, "
        "\"unclaimed\": {}, \"kvm_counters_available\": {}, \"kvm_vcpus\": {}, "
        "\"memory\": {{\"peak_rss_mib\": {:.1f}, \"guest_resident_mib\": {:.1f}}}, \"startup_ms\": {}}}",
        json_string(r.irqchip), r.vcpus, r.wall_s, r.exit_status, json_string(r.stop_reason), json_counters(r.exits),
        json_counters(r.completions), ports, irq.gsi_raises, irq.msis, irq.injections, irq.eois, irq.undeliverable,
        details, json_counters(r.unclaimed), r.kvm_counters_available ? "true" : "false", kvm, r.peak_rss_mib,
        r.guest_resident_mib, r.startup_ms ? fmt::format("{:.2f}", *r.startup_ms) : std::string("null"));
}

}  // namespace kvmini
