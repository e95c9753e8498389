#include <gtest/gtest.h>

#include "vmm/run_report.h"

namespace kvmini {
namespace {

TEST(RunReport, JsonStringsAreEscaped)
{
    EXPECT_EQ(json_string("plain"), "\"plain\"");
    EXPECT_EQ(json_string("a \"quoted\" \\ path"), "\"a \\\"quoted\\\" \\\\ path\"");
    EXPECT_EQ(json_string("line\nnext\ttab\x01"), "\"line\\nnext\\ttab\\u0001\"");
}

TEST(RunReport, TextAndJsonCarryTheSameFigures)
{
    RunReport r;
    r.irqchip = "user";
    r.vcpus = 2;
    r.exits = {{"io", 7}, {"hlt", 3}};
    r.interrupts.injections = 11;
    r.interrupts.details = {"vCPU 0: injected=11"};
    r.kvm_counters_available = true;
    r.kvm_counters = {{{"exits", 40}}, {}};
    const std::string text = format_report_text(r);
    const std::string json = format_report_json(r);
    EXPECT_NE(text.find("exits: io=7 hlt=3"), std::string::npos) << text;
    EXPECT_NE(json.find("\"exits\": {\"io\": 7, \"hlt\": 3}"), std::string::npos) << json;
    EXPECT_NE(text.find("injected=11"), std::string::npos);
    EXPECT_NE(json.find("\"injected\": 11"), std::string::npos);
    EXPECT_NE(json.find("\"kvm_vcpus\": [{\"exits\": 40}, {}]"), std::string::npos) << json;
    EXPECT_NE(json.find("\"startup_ms\": null"), std::string::npos);
}

}  // namespace
}  // namespace kvmini
