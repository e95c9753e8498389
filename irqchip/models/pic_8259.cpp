#include "irqchip/models/pic_8259.h"

#include <utility>

namespace kvmini {

namespace {

// Register layout, Intel 8259A datasheet, "Initialization Command Words" and
// "Operation Command Words" (Figure 7 "Initialization Command Word Format"
// and Figure 8 "Operation Command Word Format"). A0 = port & 1.
namespace icw1 {
inline constexpr uint8_t kIc4 = 0x01;      // D0: ICW4 needed
inline constexpr uint8_t kSngl = 0x02;     // D1: single (no ICW3)
inline constexpr uint8_t kLtim = 0x08;     // D3: level triggered mode
inline constexpr uint8_t kIsIcw1 = 0x10;   // D4 = 1 with A0 = 0 marks ICW1
inline constexpr uint8_t kMcs80Addr = 0xe0;// D7-D5: A7-A5, MCS-80/85 only
}  // namespace icw1
namespace icw2 {
inline constexpr uint8_t kVectorMask = 0xf8;  // T7-T3 in 8086 mode
}
namespace icw3 {
inline constexpr uint8_t kSlaveIdMask = 0x07;  // slave: ID2-ID0
}
namespace icw4 {
inline constexpr uint8_t kUpm = 0x01;       // D0: 1 = 8086/8088 mode
inline constexpr uint8_t kAeoi = 0x02;      // D1: automatic EOI
inline constexpr uint8_t kSfnm = 0x10;      // D4: special fully nested mode
inline constexpr uint8_t kReserved = 0xe0;  // D7-D5 must be 0
}  // namespace icw4
namespace ocw2 {  // A0 = 0, D4 = 0, D3 = 0; D7-D5 = R SL EOI, D2-D0 = L2-L0
inline constexpr uint8_t kCmdShift = 5;
inline constexpr uint8_t kLevelMask = 0x07;
inline constexpr uint8_t kRotateAeoiClear = 0;  // R=0 SL=0 EOI=0
inline constexpr uint8_t kNonSpecificEoi = 1;   // 0 0 1
inline constexpr uint8_t kNop = 2;              // 0 1 0
inline constexpr uint8_t kSpecificEoi = 3;      // 0 1 1
inline constexpr uint8_t kRotateAeoiSet = 4;    // 1 0 0
inline constexpr uint8_t kRotateNonSpecific = 5;// 1 0 1
inline constexpr uint8_t kSetPriority = 6;      // 1 1 0
inline constexpr uint8_t kRotateSpecific = 7;   // 1 1 1
}  // namespace ocw2
namespace ocw3 {  // A0 = 0, D4 = 0, D3 = 1
inline constexpr uint8_t kIsOcw3 = 0x08;
inline constexpr uint8_t kRis = 0x01;      // D0: read ISR (with RR)
inline constexpr uint8_t kRr = 0x02;       // D1: read register command
inline constexpr uint8_t kPoll = 0x04;     // D2: poll command
inline constexpr uint8_t kSmm = 0x20;      // D5: special mask mode (with ESMM)
inline constexpr uint8_t kEsmm = 0x40;     // D6: enable special mask mode
inline constexpr uint8_t kReserved = 0x80; // D7 must be 0
}  // namespace ocw3
// Poll word ("Poll Command"): I in D7 (an interrupt is requested), W2-W0 the
// highest-priority requesting level.
inline constexpr uint8_t kPollInterrupt = 0x80;
inline constexpr uint8_t kSpuriousIr = 7;  // "responds as if IR7 were active"

// ELCR (PIIX/ICH "ELCR1/ELCR2"): IRQ 0, 1, 2 (ELCR1 bits 0-2) and IRQ 8, 13
// (ELCR2 bits 0 and 5) are edge-only; their bits are reserved.
inline constexpr uint8_t kElcrWritableMaster = 0xf8;
inline constexpr uint8_t kElcrWritableSlave = 0xde;

// Power-on (SeaBIOS) state.
inline constexpr uint8_t kBiosMasterVector = 0x08;
inline constexpr uint8_t kBiosSlaveVector = 0x70;
inline constexpr uint8_t kBiosMasterImr = 0xfb;
inline constexpr uint8_t kBiosSlaveImr = 0xff;

constexpr uint8_t bit(unsigned ir) { return static_cast<uint8_t>(1u << ir); }

}  // namespace

Pic8259Pair::Pic8259Pair(OutputCallback on_output, EoiCallback on_eoi)
    : on_output_(std::move(on_output)), on_eoi_(std::move(on_eoi))
{
    reset_locked();
    int_level_ = false;
}

void Pic8259Pair::reset()
{
    std::unique_lock lock(mutex_);
    reset_locked();
    update_locked();
    deliver(lock);
}

void Pic8259Pair::reset_locked()
{
    for (unsigned i = 0; i < 2; ++i) {
        Chip& c = chips_[i];
        const uint8_t lines = c.lines;  // the wires keep their levels
        c = Chip{};
        c.lines = lines;
        c.x86_mode = true;
        c.icw4_needed = true;
        c.elcr_writable = i == 0 ? kElcrWritableMaster : kElcrWritableSlave;
    }
    chips_[0].vector_base = kBiosMasterVector;
    chips_[0].icw3 = bit(kCascadeIrq);
    chips_[0].imr = kBiosMasterImr;
    chips_[1].vector_base = kBiosSlaveVector;
    chips_[1].icw3 = kCascadeIrq;
    chips_[1].imr = kBiosSlaveImr;
    // The master's IR2 is the slave's INT, low after reset; drop any latch.
    chips_[0].lines &= static_cast<uint8_t>(~bit(kCascadeIrq));
}

bool Pic8259Pair::level_triggered(const Chip& c, unsigned ir) const { return c.ltim || (c.elcr & bit(ir)); }

// "Edge and Level Triggered Modes": level mode, IRR follows the input; edge
// mode, a 0->1 change sets IRR, which then stays set until INTA (see header).
void Pic8259Pair::drive_input(Chip& c, unsigned ir, bool level)
{
    const uint8_t m = bit(ir);
    const bool was = c.lines & m;
    if (level)
        c.lines |= m;
    else
        c.lines &= static_cast<uint8_t>(~m);
    if (level_triggered(c, ir)) {
        if (level)
            c.irr |= m;
        else
            c.irr &= static_cast<uint8_t>(~m);
    } else if (level && !was) {
        c.irr |= m;
    }
}

// "Fully Nested Mode" with rotation: priorities run from `highest` round to
// highest-1. A request wins if no level of equal or higher priority is in
// service; in special mask mode in-service levels that are masked do not
// count ("Special Mask Mode"); in special fully nested mode the master lets a
// request from a slave input through while that input is in service ("The
// Special Fully Nested Mode"). Returns the IR, or -1.
int Pic8259Pair::pending_request(const Chip& c) const
{
    const uint8_t req = c.irr & static_cast<uint8_t>(~c.imr);
    if (req == 0) return -1;
    const uint8_t in_service = c.special_mask ? (c.isr & static_cast<uint8_t>(~c.imr)) : c.isr;
    const bool sfnm_master = c.sfnm && is_master(c) && !c.single;
    for (unsigned k = 0; k < 8; ++k) {
        const unsigned ir = (c.highest + k) & 7;
        if (in_service & bit(ir)) {
            if (sfnm_master && (c.icw3 & bit(ir)) && (req & bit(ir))) return static_cast<int>(ir);
            return -1;
        }
        if (req & bit(ir)) return static_cast<int>(ir);
    }
    return -1;
}

// "Interrupt Sequence": INTA sets the ISR bit and resets the IRR bit (edge
// mode; a level-mode IRR bit follows its input); in AEOI mode the ISR bit is
// reset at the end of the sequence ("Automatic End of Interrupt (AEOI) Mode"),
// rotating if rotate-in-AEOI is set ("Automatic Rotation").
void Pic8259Pair::intack(Chip& c, unsigned ir)
{
    c.isr |= bit(ir);
    if (!level_triggered(c, ir)) c.irr &= static_cast<uint8_t>(~bit(ir));
    if (c.aeoi) {
        if (c.rotate_on_aeoi) c.highest = static_cast<uint8_t>((ir + 1) & 7);
        clear_isr(c, ir);
    }
    // The INTA cycle resets this chip's INT; on the slave that is the
    // master's IR2 input, which sees a new edge if a request remains.
    if (!is_master(c)) chips_[0].lines &= static_cast<uint8_t>(~bit(kCascadeIrq));
}

void Pic8259Pair::clear_isr(Chip& c, unsigned ir)
{
    c.isr &= static_cast<uint8_t>(~bit(ir));
    if (on_eoi_) outbox_.push(Event{true, is_master(c) ? ir : ir + 8});
}

// Called after every change: the slave's INT drives the master's IR2, the
// master's INT is the output.
void Pic8259Pair::update_locked()
{
    drive_input(chips_[0], kCascadeIrq, pending_request(chips_[1]) >= 0);
    const bool level = pending_request(chips_[0]) >= 0;
    if (level != int_level_) {
        int_level_ = level;
        if (on_output_) outbox_.push(Event{false, level});
    }
}

void Pic8259Pair::deliver(std::unique_lock<std::mutex>& lock)
{
    outbox_.drain(lock, [this](const Event& e) {
        if (e.is_eoi)
            on_eoi_(e.value);
        else
            on_output_(e.value != 0);
    });
}

void Pic8259Pair::set_irq(unsigned irq, bool level)
{
    if (irq >= 16 || irq == kCascadeIrq) return;
    std::unique_lock lock(mutex_);
    drive_input(chips_[irq >> 3], irq & 7, level);
    update_locked();
    deliver(lock);
}

bool Pic8259Pair::output() const
{
    std::lock_guard lock(mutex_);
    return int_level_;
}

uint8_t Pic8259Pair::acknowledge()
{
    std::unique_lock lock(mutex_);
    ++stats_.acknowledges;
    Chip& master = chips_[0];
    Chip& slave = chips_[1];
    uint8_t vector;
    const int ir = pending_request(master);
    if (ir < 0) {
        ++stats_.spurious_irq7;
        vector = master.vector_base | kSpuriousIr;
    } else {
        intack(master, static_cast<unsigned>(ir));
        // "Cascade Mode": the master sends the slave's ID on CAS0-2 for an
        // input that ICW3 marks as having a slave, and the slave answers.
        const bool cascaded = !master.single && (master.icw3 & bit(static_cast<unsigned>(ir)));
        if (cascaded) {
            const int sir = pending_request(slave);
            if (sir < 0) {
                ++stats_.spurious_irq15;
                vector = slave.vector_base | kSpuriousIr;
            } else {
                intack(slave, static_cast<unsigned>(sir));
                vector = slave.vector_base | static_cast<uint8_t>(sir);
            }
        } else {
            vector = master.vector_base | static_cast<uint8_t>(ir);
        }
    }
    // INT is reset by the INTA cycle and raised again if a request remains:
    // only the level after the cycle is reported.
    update_locked();
    deliver(lock);
    return vector;
}

uint8_t Pic8259Pair::read_port(uint16_t port)
{
    std::unique_lock lock(mutex_);
    const uint8_t v = read_locked(port);
    update_locked();
    deliver(lock);
    return v;
}

void Pic8259Pair::write_port(uint16_t port, uint8_t value)
{
    std::unique_lock lock(mutex_);
    write_locked(port, value);
    update_locked();
    deliver(lock);
}

// "Poll Command": the read is treated as an interrupt acknowledge (the ISR
// bit is set if there is a request) and returns the poll word.
uint8_t Pic8259Pair::poll_locked(Chip& c)
{
    c.poll = false;
    ++stats_.polls;
    const int ir = pending_request(c);
    if (ir < 0) return 0;
    intack(c, static_cast<unsigned>(ir));
    return kPollInterrupt | static_cast<uint8_t>(ir);
}

uint8_t Pic8259Pair::read_locked(uint16_t port)
{
    switch (port) {
    case kMasterBase:
    case kMasterBase + 1:
    case kSlaveBase:
    case kSlaveBase + 1: {
        Chip& c = chips_[port >= kSlaveBase ? 1 : 0];
        if (c.poll) return poll_locked(c);
        // "Reading the 8259A Status": A0 = 1 reads IMR; A0 = 0 the register
        // OCW3 selected (IRR after ICW1).
        if (port & 1) return c.imr;
        return c.read_isr ? c.isr : c.irr;
    }
    case kElcrBase:
    case kElcrBase + 1:
        return chips_[port - kElcrBase].elcr;
    default:
        return 0xff;
    }
}

void Pic8259Pair::write_locked(uint16_t port, uint8_t value)
{
    switch (port) {
    case kMasterBase:
    case kSlaveBase:
        write_command(chips_[port == kSlaveBase ? 1 : 0], value);
        break;
    case kMasterBase + 1:
    case kSlaveBase + 1:
        write_data(chips_[port == kSlaveBase + 1 ? 1 : 0], value);
        break;
    case kElcrBase:
    case kElcrBase + 1: {
        Chip& c = chips_[port - kElcrBase];
        if (value & ~c.elcr_writable) ++stats_.odd_writes;
        const uint8_t now_level = value & c.elcr_writable & static_cast<uint8_t>(~c.elcr);
        c.elcr = value & c.elcr_writable;
        // Inputs switched to level mode: IRR now follows the input.
        c.irr = static_cast<uint8_t>((c.irr & ~now_level) | (c.lines & now_level));
        break;
    }
    default:
        break;
    }
}

// A0 = 0: ICW1, OCW2 or OCW3.
void Pic8259Pair::write_command(Chip& c, uint8_t value)
{
    if (value & icw1::kIsIcw1) {
        // ICW1 starts initialization ("Initialization Command Words"): edge
        // sense reset (an input must go low to high again), IMR cleared, IR7
        // lowest priority, slave address 7, special mask mode off, status
        // read set to IRR; no IC4 means ICW4's functions are all zero.
        c.icw4_needed = value & icw1::kIc4;
        c.single = value & icw1::kSngl;
        c.ltim = value & icw1::kLtim;
        if (value & icw1::kMcs80Addr) ++stats_.odd_writes;
        if (c.single) ++stats_.odd_writes;  // a PC's pair is always cascaded
        c.init_next = 2;
        c.imr = 0;
        c.isr = 0;
        c.highest = 0;
        c.icw3 = is_master(c) ? 0 : 7;
        c.special_mask = false;
        c.read_isr = false;
        c.poll = false;
        c.rotate_on_aeoi = false;
        if (!c.icw4_needed) {
            c.x86_mode = false;
            c.aeoi = false;
            c.sfnm = false;
        }
        // Edge latches are dropped; level-mode IRR follows the inputs.
        uint8_t level_mask = 0;
        for (unsigned ir = 0; ir < 8; ++ir)
            if (level_triggered(c, ir)) level_mask |= bit(ir);
        c.irr = c.lines & level_mask;
        return;
    }
    if (c.init_next != 0) ++stats_.odd_writes;  // OCW in the middle of the ICWs
    if (value & ocw3::kIsOcw3) {
        if (value & ocw3::kReserved) ++stats_.odd_writes;
        if (value & ocw3::kEsmm) c.special_mask = value & ocw3::kSmm;
        if (value & ocw3::kRr) c.read_isr = value & ocw3::kRis;
        if (value & ocw3::kPoll) c.poll = true;
        return;
    }
    // OCW2 ("End of Interrupt", "Automatic Rotation", "Specific Rotation").
    const unsigned level = value & ocw2::kLevelMask;
    switch (value >> ocw2::kCmdShift) {
    case ocw2::kRotateAeoiClear:
        c.rotate_on_aeoi = false;
        break;
    case ocw2::kRotateAeoiSet:
        c.rotate_on_aeoi = true;
        break;
    case ocw2::kNonSpecificEoi:
    case ocw2::kRotateNonSpecific: {
        ++stats_.eois;
        // Resets the highest-priority ISR bit; in special mask mode an ISR bit
        // masked by IMR is not reset by a non-specific EOI ("Special Mask
        // Mode").
        const uint8_t candidates = c.special_mask ? (c.isr & static_cast<uint8_t>(~c.imr)) : c.isr;
        if (candidates == 0) {
            ++stats_.odd_writes;
            break;
        }
        for (unsigned k = 0; k < 8; ++k) {
            const unsigned ir = (c.highest + k) & 7;
            if (candidates & bit(ir)) {
                if ((value >> ocw2::kCmdShift) == ocw2::kRotateNonSpecific)
                    c.highest = static_cast<uint8_t>((ir + 1) & 7);
                clear_isr(c, ir);
                break;
            }
        }
        break;
    }
    case ocw2::kSpecificEoi:
    case ocw2::kRotateSpecific:
        ++stats_.eois;
        if (!(c.isr & bit(level))) ++stats_.odd_writes;
        if ((value >> ocw2::kCmdShift) == ocw2::kRotateSpecific) c.highest = static_cast<uint8_t>((level + 1) & 7);
        if (c.isr & bit(level)) clear_isr(c, level);
        break;
    case ocw2::kSetPriority:
        // L2-L0 becomes the lowest priority.
        c.highest = static_cast<uint8_t>((level + 1) & 7);
        break;
    case ocw2::kNop:
    default:
        break;
    }
}

// A0 = 1: ICW2-ICW4 during initialization, else OCW1 (IMR).
void Pic8259Pair::write_data(Chip& c, uint8_t value)
{
    switch (c.init_next) {
    case 2:
        if (value & ~icw2::kVectorMask) ++stats_.odd_writes;
        c.vector_base = value & icw2::kVectorMask;
        c.init_next = c.single ? (c.icw4_needed ? 4 : 0) : 3;
        break;
    case 3:
        if (is_master(c)) {
            if (value != bit(kCascadeIrq)) ++stats_.odd_writes;  // the PC wires the slave to IR2
            c.icw3 = value;
        } else {
            if (value != kCascadeIrq) ++stats_.odd_writes;
            c.icw3 = value & icw3::kSlaveIdMask;
        }
        c.init_next = c.icw4_needed ? 4 : 0;
        break;
    case 4:
        if (value & icw4::kReserved) ++stats_.odd_writes;
        c.x86_mode = value & icw4::kUpm;
        c.aeoi = value & icw4::kAeoi;
        c.sfnm = value & icw4::kSfnm;
        c.init_next = 0;
        break;
    default:
        c.imr = value;
        return;
    }
    // Initialization finished without choosing 8086 mode.
    if (c.init_next == 0 && !c.x86_mode) ++stats_.odd_writes;
}

void Pic8259Pair::attach(Bus& pio, const std::function<void()>& after_write)
{
    pio.add(kMasterBase, kPortsPerChip, master_dev_, "8259A master", after_write);
    pio.add(kSlaveBase, kPortsPerChip, slave_dev_, "8259A slave", after_write);
    pio.add(kElcrBase, kPortsPerChip, elcr_dev_, "8259A ELCR", after_write);
}

// A wider access covers consecutive ports, one byte each (the ISA bus splits
// it).
void Pic8259Pair::PortDevice::read(uint64_t offset, std::span<uint8_t> data)
{
    for (size_t i = 0; i < data.size(); ++i) data[i] = pic_.read_port(static_cast<uint16_t>(base_ + offset + i));
}

void Pic8259Pair::PortDevice::write(uint64_t offset, std::span<const uint8_t> data)
{
    for (size_t i = 0; i < data.size(); ++i) pic_.write_port(static_cast<uint16_t>(base_ + offset + i), data[i]);
}

uint8_t Pic8259Pair::irr(unsigned chip) const
{
    std::lock_guard lock(mutex_);
    return chips_[chip & 1].irr;
}

uint8_t Pic8259Pair::isr(unsigned chip) const
{
    std::lock_guard lock(mutex_);
    return chips_[chip & 1].isr;
}

uint8_t Pic8259Pair::imr(unsigned chip) const
{
    std::lock_guard lock(mutex_);
    return chips_[chip & 1].imr;
}

uint8_t Pic8259Pair::elcr(unsigned chip) const
{
    std::lock_guard lock(mutex_);
    return chips_[chip & 1].elcr;
}

uint8_t Pic8259Pair::vector_base(unsigned chip) const
{
    std::lock_guard lock(mutex_);
    return chips_[chip & 1].vector_base;
}

PicStats Pic8259Pair::stats() const
{
    std::lock_guard lock(mutex_);
    return stats_;
}

}  // namespace kvmini
