// KVM's own counters for a VM or a vCPU, from its binary statistics file
// (KVM_GET_STATS_FD, KVM API documentation 4.133; KVM_CAP_BINARY_STATS_FD):
// exits by kind, halt wake-ups, interrupt and NMI injections, interrupt
// windows, ... They need neither root nor debugfs. The mode comparison
// reads them before and after a run and shows the deltas next to kvmini's
// own counters, with KVM's names.
//
// The file: a header (flags, name_size, num_desc, id_offset, desc_offset,
// data_offset: six u32), an id string, num_desc descriptors of 16 bytes plus
// a name of name_size bytes each (flags u32, exponent s16, size u16, offset
// u32, bucket_size u32, name), and the data: u64 values at data_offset +
// the descriptor's offset. Only single-value statistics (size 1) are kept;
// histograms are skipped. Parsed by offsets, not through <linux/kvm.h>'s
// struct, whose flexible array member gives C++ another size.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/unique_fd.h"

namespace kvmini {

struct KvmStatDesc {
    std::string name;
    uint32_t flags = 0;     // KVM_STATS_TYPE_* | KVM_STATS_UNIT_* | KVM_STATS_BASE_*
    uint32_t offset = 0;    // of its first u64, from the data block
};

// The single-value descriptors of a statistics file whose first
// `blob.size()` bytes (header and descriptors) are given, and where the data
// block starts. Throws Error on a malformed file.
std::vector<KvmStatDesc> parse_kvm_stats_descriptors(std::span<const uint8_t> blob, uint32_t& data_offset);

class KvmStats {
public:
    // KVM_GET_STATS_FD on a VM or vCPU fd. Throws Error if KVM refuses.
    explicit KvmStats(int kvm_object_fd);
    const std::vector<KvmStatDesc>& descriptors() const { return descs_; }
    // The current values, in descriptors() order.
    std::vector<uint64_t> read() const;
    // Cumulative counters only (not instant values or peaks), for deltas.
    static bool is_cumulative(const KvmStatDesc& d);

private:
    UniqueFd fd_;
    std::vector<KvmStatDesc> descs_;
    uint32_t data_offset_ = 0;
    uint32_t data_size_ = 0;
};

}  // namespace kvmini
