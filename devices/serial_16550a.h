// A National/TI PC16550D UART ("16550A"), as on a PC's COM1 (8 ports at
// 0x3f8, ISA IRQ 4). The model is complete at register level, so that Linux's
// 8250 driver probes it as "16550A" and drives it with interrupts; the serial
// line itself is not timed:
//  - transmit is instantaneous: a byte written to THR goes to the sink at once,
//    so THR/TX FIFO are always empty (LSR.THRE = LSR.TEMT = 1) and the THRE
//    interrupt comes back right after each write;
//  - receive: bytes handed to receive() enter the 16-byte RX FIFO (1 byte in
//    16450/non-FIFO mode) at once. What does not fit waits in a host-side
//    backlog and enters the FIFO as the guest makes room, as if the sender
//    paused under flow control; so a paste into the console is not cut at 16
//    bytes. Only when the backlog is full too (or it is configured to 0) is a
//    byte lost with LSR.OE, as on the chip;
//  - the character timeout is not timed: in FIFO mode, while the FIFO holds
//    data below the trigger level, the timeout interrupt (IIR 0xCC) is
//    reported at once, and at or above the trigger level "received data
//    available" (IIR 0xC4). So the guest is interrupted as soon as any data is
//    present, which is what a driver needs;
//  - in loopback the PC's OUT2 gate is closed (the chip forces its modem
//    output pins inactive), so no interrupt reaches the IRQ line then;
//  - no parity/framing errors or breaks ever happen (LSR PE/FE/BI/bit 7 stay 0),
//    and the modem inputs are constant: DCD, DSR and CTS asserted, RI not.
// Register reference: PC16550D datasheet (National Semiconductor, June 1995;
// republished by TI as SNLS378C), section 8 "Registers"; the constants below
// cite the subsections.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "devices/bus.h"
#include "devices/irq_line.h"

namespace kvmini {

namespace uart {

inline constexpr uint64_t kPortCount = 8;     // A2..A0 decode 8 registers
inline constexpr uint64_t kCom1Base = 0x3f8;  // PC COM1
inline constexpr size_t kFifoSize = 16;       // 8.5: 16-byte RX and TX FIFOs

// Register offsets. PC16550D Table II "Summary of Registers".
inline constexpr uint64_t kRbrThr = 0;  // RBR (read) / THR (write); DLL when LCR.DLAB
inline constexpr uint64_t kIer = 1;     // IER; DLM when LCR.DLAB
inline constexpr uint64_t kIirFcr = 2;  // IIR (read) / FCR (write), whatever DLAB
inline constexpr uint64_t kLcr = 3;
inline constexpr uint64_t kMcr = 4;
inline constexpr uint64_t kLsr = 5;
inline constexpr uint64_t kMsr = 6;
inline constexpr uint64_t kScr = 7;

// 8.7 Interrupt Enable Register: bits 7..4 are always 0.
inline constexpr uint8_t kIerErbfi = 0x01;  // received data available (and timeout)
inline constexpr uint8_t kIerEtbei = 0x02;  // transmitter holding register empty
inline constexpr uint8_t kIerElsi = 0x04;   // receiver line status
inline constexpr uint8_t kIerEdssi = 0x08;  // modem status
inline constexpr uint8_t kIerMask = 0x0f;

// 8.6 Interrupt Identification Register and Table IV "Interrupt Control
// Functions". Bit 0 is 0 while an interrupt is pending; bits 3..1 name the
// highest-priority one; bits 7..6 are both set while FIFOs are enabled.
inline constexpr uint8_t kIirNoInt = 0x01;
inline constexpr uint8_t kIirLineStatus = 0x06;  // priority 1: OE/PE/FE/BI; cleared by reading LSR
inline constexpr uint8_t kIirRxData = 0x04;      // priority 2: data at trigger level; cleared below it
inline constexpr uint8_t kIirRxTimeout = 0x0c;   // priority 2: character timeout (FIFO mode); reading RBR
inline constexpr uint8_t kIirThre = 0x02;        // priority 3: cleared by reading IIR or writing THR
inline constexpr uint8_t kIirModem = 0x00;       // priority 4: cleared by reading MSR
inline constexpr uint8_t kIirFifoEnabled = 0xc0;

// 8.5 FIFO Control Register (write only). Bits other than 0 are only taken
// while bit 0 is written as 1; changing bit 0 clears both FIFOs.
inline constexpr uint8_t kFcrEnable = 0x01;
inline constexpr uint8_t kFcrClearRx = 0x02;
inline constexpr uint8_t kFcrClearTx = 0x04;
inline constexpr uint8_t kFcrDmaMode = 0x08;
inline constexpr uint8_t kFcrTriggerMask = 0xc0;  // RX trigger: 00=1, 01=4, 10=8, 11=14 bytes
inline constexpr uint8_t kFcrTriggerShift = 6;
inline constexpr uint8_t kRxTriggerLevels[4] = {1, 4, 8, 14};

// 8.1 Line Control Register.
inline constexpr uint8_t kLcrBreak = 0x40;
inline constexpr uint8_t kLcrDlab = 0x80;

// 8.8 Modem Control Register: bits 7..5 are always 0. In loopback (bit 4) the
// modem outputs are forced inactive and looped back to the modem inputs
// (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD) and TX is looped back to RX.
inline constexpr uint8_t kMcrDtr = 0x01;
inline constexpr uint8_t kMcrRts = 0x02;
inline constexpr uint8_t kMcrOut1 = 0x04;
inline constexpr uint8_t kMcrOut2 = 0x08;  // on a PC, gates the UART's INTR onto the IRQ line
inline constexpr uint8_t kMcrLoop = 0x10;
inline constexpr uint8_t kMcrMask = 0x1f;

// 8.4 Line Status Register.
inline constexpr uint8_t kLsrDr = 0x01;       // data ready
inline constexpr uint8_t kLsrOe = 0x02;       // overrun error
inline constexpr uint8_t kLsrPe = 0x04;       // parity error
inline constexpr uint8_t kLsrFe = 0x08;       // framing error
inline constexpr uint8_t kLsrBi = 0x10;       // break interrupt
inline constexpr uint8_t kLsrThre = 0x20;     // THR (TX FIFO) empty
inline constexpr uint8_t kLsrTemt = 0x40;     // THR and shift register empty
inline constexpr uint8_t kLsrFifoErr = 0x80;  // error in RX FIFO (FIFO mode)
inline constexpr uint8_t kLsrErrorBits = kLsrOe | kLsrPe | kLsrFe | kLsrBi;  // cleared by reading LSR

// 8.9 Modem Status Register: bits 3..0 are "changed since last read" (TERI:
// RI went from on to off), cleared by reading MSR; bits 7..4 the input lines.
inline constexpr uint8_t kMsrDcts = 0x01;
inline constexpr uint8_t kMsrDdsr = 0x02;
inline constexpr uint8_t kMsrTeri = 0x04;
inline constexpr uint8_t kMsrDdcd = 0x08;
inline constexpr uint8_t kMsrCts = 0x10;
inline constexpr uint8_t kMsrDsr = 0x20;
inline constexpr uint8_t kMsrRi = 0x40;
inline constexpr uint8_t kMsrDcd = 0x80;
inline constexpr uint8_t kMsrDeltaMask = 0x0f;
// What kvmini's host side presents outside loopback: carrier, data set ready
// and clear to send asserted, no ring.
inline constexpr uint8_t kMsrHostLines = kMsrDcd | kMsrDsr | kMsrCts;

// Table III "UART Reset Configuration".
inline constexpr uint8_t kResetIir = kIirNoInt;               // 0x01
inline constexpr uint8_t kResetLsr = kLsrThre | kLsrTemt;     // 0x60
inline constexpr uint8_t kResetMsr = kMsrHostLines;           // 0xb0: deltas 0, lines as inputs
// The divisor latch is not reset by the chip; kvmini starts it at 12 (9600
// baud from the PC's 1.8432 MHz clock), which the guest reprograms anyway.
inline constexpr uint16_t kResetDivisor = 12;

// Not the chip's: how many host bytes may wait for room in the RX FIFO.
inline constexpr size_t kDefaultHostBacklog = 4096;

}  // namespace uart

class Serial16550a : public BusDevice {
public:
    // Gets the bytes the guest transmits. Called with no lock of the UART held
    // but in transmit order; it must not call back into the UART.
    using Sink = std::function<void(std::span<const uint8_t>)>;

    // Guest misbehaviour and lost data, counted (never fatal).
    struct Stats {
        uint64_t tx_bytes = 0;           // bytes given to the sink
        uint64_t rx_bytes = 0;           // bytes that entered the RX FIFO (host and loopback)
        uint64_t rx_overruns = 0;        // bytes lost because the RX FIFO/RBR was full
        uint64_t rx_dropped_loopback = 0;  // host bytes lost while in loopback (backlog full)
        uint64_t wide_accesses = 0;      // 2/4/8-byte accesses (split into byte accesses)
        uint64_t readonly_writes = 0;    // writes to LSR/MSR
        uint64_t reserved_bits = 0;      // writes setting IER 7..4 or MCR 7..5
        uint64_t fcr_ignored = 0;        // FCR writes with FIFO-enable 0 and other bits set
        uint64_t empty_rbr_reads = 0;    // RBR read with nothing received
    };

    // `host_backlog`: how many bytes from receive() may wait for room in the
    // RX FIFO; 0 makes receive() behave as the bare chip (overrun when full).
    explicit Serial16550a(IrqLine irq, Sink sink = {}, size_t host_backlog = uart::kDefaultHostBacklog);

    // BusDevice: registers at offsets 0..7 (uart::kRbrThr...). Wider accesses
    // are split into consecutive byte accesses, as an ISA bus does.
    void read(uint64_t offset, std::span<uint8_t> data) override;
    void write(uint64_t offset, std::span<const uint8_t> data) override;

    // Bytes from the host (the terminal input thread). Each byte enters the RX
    // FIFO, or waits in the backlog while the FIFO is full or the UART is in
    // loopback (its serial input disconnected). With the backlog full too the
    // byte is lost and LSR.OE is set (in non-FIFO mode the 1-byte RBR is
    // overwritten, as the chip does; in loopback it is just dropped). Returns
    // how many bytes were taken (an overwriting byte counts). Thread-safe.
    size_t receive(std::span<const uint8_t> bytes);
    // How many more bytes receive() takes without loss right now.
    size_t rx_room() const;

    // Back to the power-on state (Table III), e.g. on a machine reset.
    void reset();

    // The level the UART drives on its IRQ line right now.
    bool irq_level() const;
    Stats stats() const;

private:
    uint8_t read_register(uint64_t offset);
    // Returns true if `value` was transmitted to the host (sink must be called).
    bool write_register(uint64_t offset, uint8_t value);

    bool fifo_enabled() const { return (fcr_ & uart::kFcrEnable) != 0; }
    bool loopback() const { return (mcr_ & uart::kMcrLoop) != 0; }
    size_t rx_capacity() const { return fifo_enabled() ? uart::kFifoSize : 1; }
    size_t rx_trigger() const;
    // Into the RX FIFO (RBR in 16450 mode); on overrun sets OE. False if lost.
    bool push_rx(uint8_t byte);
    void clear_rx();
    // Moves waiting host bytes into the RX FIFO while it has room.
    void refill_rx();
    // The modem input lines (MSR 7..4) as the UART sees them now.
    uint8_t modem_inputs() const;
    // Records deltas between the old and current modem input lines.
    void update_msr_deltas(uint8_t old_inputs);
    // The highest-priority pending, enabled interrupt (IIR bits 3..0).
    uint8_t pending_interrupt() const;
    // Drives the IRQ line from the current state. Called with mutex_ held.
    void update_irq();

    mutable std::mutex mutex_;  // all register state below
    std::mutex tx_mutex_;       // keeps sink calls in transmit order

    IrqLine irq_;
    Sink sink_;

    uint8_t ier_ = 0;
    uint8_t fcr_ = 0;
    uint8_t lcr_ = 0;
    uint8_t mcr_ = 0;
    uint8_t lsr_errors_ = 0;  // LSR OE/PE/FE/BI (the rest is derived)
    uint8_t msr_deltas_ = 0;
    uint8_t scr_ = 0;
    uint16_t divisor_ = uart::kResetDivisor;
    bool thre_pending_ = false;  // THRE interrupt armed (cleared by IIR read / THR write)
    uint8_t rx_fifo_[uart::kFifoSize] = {};
    size_t rx_head_ = 0;
    size_t rx_count_ = 0;
    uint8_t last_rx_ = 0;  // what RBR reads when empty
    std::deque<uint8_t> backlog_;  // host bytes waiting for RX FIFO room
    size_t backlog_limit_;
    bool irq_high_ = false;
    Stats stats_;
};

}  // namespace kvmini
