// Register-level tests of the 16550A model against the PC16550D datasheet, and
// the probe sequences Linux's 8250 driver runs (8250_port.c autoconfig()).
#include "devices/serial_16550a.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include "devices/bus.h"
#include "irqchip/gsi_layout.h"
#include "tests/unit/fakes.h"

namespace kvmini {
namespace {

constexpr uint64_t kBase = uart::kCom1Base;
constexpr uint32_t kIrq = gsi::kCom1Irq;

class Serial16550aTest : public ::testing::Test {
protected:
    Serial16550aTest()
        : uart_(
              irqs_.line(kIrq),
              [this](std::span<const uint8_t> b) { sent_.insert(sent_.end(), b.begin(), b.end()); },
              /*host_backlog=*/0)  // the bare chip; the backlog has its own tests
    {
        bus_.add(kBase, uart::kPortCount, uart_, "com1");
    }

    uint8_t in(uint64_t reg)
    {
        uint8_t v = 0;
        EXPECT_TRUE(bus_.read(kBase + reg, std::span<uint8_t>(&v, 1)));
        return v;
    }
    void out(uint64_t reg, uint8_t v) { EXPECT_TRUE(bus_.write(kBase + reg, std::span<const uint8_t>(&v, 1))); }
    void host_sends(std::vector<uint8_t> bytes) { uart_.receive(bytes); }
    bool line() const { return irqs_.level(kIrq); }

    test::RecordingIrqSink irqs_;  // the line's level as a router passes it on
    std::vector<uint8_t> sent_;
    Serial16550a uart_;
    Bus bus_{"pio"};
};

TEST_F(Serial16550aTest, ResetValuesMatchDatasheetTableIII)
{
    EXPECT_EQ(in(uart::kIer), 0x00);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    EXPECT_EQ(in(uart::kLcr), 0x00);
    EXPECT_EQ(in(uart::kMcr), 0x00);
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(in(uart::kMsr), 0xb0);  // no deltas; DCD, DSR, CTS asserted by the host side
    EXPECT_EQ(in(uart::kScr), 0x00);
    EXPECT_FALSE(line());
    EXPECT_TRUE(irqs_.events().empty());
}

TEST_F(Serial16550aTest, ScratchRegisterHoldsAnyByte)
{
    for (uint8_t v : {0x00, 0x55, 0xaa, 0xff, 0x5a}) {
        out(uart::kScr, v);
        EXPECT_EQ(in(uart::kScr), v);
    }
}

TEST_F(Serial16550aTest, DlabSwitchesOffsetsZeroAndOneToDivisorLatch)
{
    out(uart::kIer, 0x05);
    out(uart::kLcr, 0x83);  // DLAB, 8N1
    out(uart::kRbrThr, 0x01);
    out(uart::kIer, 0x00);  // DLM
    EXPECT_EQ(in(uart::kRbrThr), 0x01);
    EXPECT_EQ(in(uart::kIer), 0x00);
    EXPECT_EQ(in(uart::kLcr), 0x83);
    EXPECT_TRUE(sent_.empty());  // a DLL write is not a transmit
    out(uart::kLcr, 0x03);
    EXPECT_EQ(in(uart::kIer), 0x05);  // IER untouched by DLM writes
    out(uart::kLcr, 0x80);
    EXPECT_EQ(in(uart::kRbrThr), 0x01);
    EXPECT_EQ(in(uart::kIer), 0x00);
    // LCR 0xbf (Linux's EFR probe) is just DLAB + bits: offset 2 is still IIR.
    out(uart::kLcr, 0xbf);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
}

TEST_F(Serial16550aTest, IerUpperBitsReadAsZero)
{
    out(uart::kIer, 0xff);
    EXPECT_EQ(in(uart::kIer), 0x0f);
    EXPECT_EQ(uart_.stats().reserved_bits, 1u);
    out(uart::kMcr, 0xff);
    EXPECT_EQ(in(uart::kMcr), 0x1f);
}

TEST_F(Serial16550aTest, FifoEnableShowsInIirBits7And6)
{
    out(uart::kIirFcr, 0x01);
    EXPECT_EQ(in(uart::kIirFcr), 0xc1);
    out(uart::kIirFcr, 0x21);  // bit 5 (16750 64-byte FIFO) does not exist on a 16550A
    EXPECT_EQ(in(uart::kIirFcr), 0xc1);
    out(uart::kIirFcr, 0x00);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    // Bits other than 0 are ignored unless bit 0 is written as 1.
    out(uart::kIirFcr, 0xc0);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    EXPECT_EQ(uart_.stats().fcr_ignored, 1u);
}

TEST_F(Serial16550aTest, TransmitGoesToSinkAndLeavesThrEmpty)
{
    for (uint8_t c : {'o', 'k', '\n'}) out(uart::kRbrThr, c);
    EXPECT_EQ(sent_, (std::vector<uint8_t>{'o', 'k', '\n'}));
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(uart_.stats().tx_bytes, 3u);
}

TEST_F(Serial16550aTest, ThreInterruptRaisedByEtbeiAndClearedByIirRead)
{
    out(uart::kMcr, uart::kMcrOut2);
    EXPECT_FALSE(line());
    out(uart::kIer, uart::kIerEtbei);
    EXPECT_TRUE(line());
    EXPECT_EQ(in(uart::kIirFcr), 0x02);  // reading it clears it: it was the source
    EXPECT_FALSE(line());
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    // Writing THR: the byte leaves at once and THR is empty again.
    out(uart::kRbrThr, 'x');
    EXPECT_TRUE(line());
    EXPECT_EQ(in(uart::kIirFcr), 0x02);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    // Re-enabling ETBEI re-arms it (Linux's UART_BUG_THRE test in startup).
    out(uart::kIer, 0);
    out(uart::kIer, uart::kIerEtbei);
    EXPECT_EQ(in(uart::kIirFcr), 0x02);
    // Writing IER with ETBEI already set does not re-arm.
    out(uart::kIer, uart::kIerEtbei);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    const std::vector<std::pair<uint32_t, bool>> expect = {
        {kIrq, true}, {kIrq, false}, {kIrq, true}, {kIrq, false}, {kIrq, true}, {kIrq, false}};
    EXPECT_EQ(irqs_.events(), expect);
}

TEST_F(Serial16550aTest, ThreStaysPendingWhileMaskedAndIirDoesNotClearIt)
{
    out(uart::kMcr, uart::kMcrOut2);
    out(uart::kIer, uart::kIerEtbei | uart::kIerErbfi);
    host_sends({'a'});
    EXPECT_EQ(in(uart::kIirFcr), 0x04);  // RX data has priority; THRE is not the source
    EXPECT_EQ(in(uart::kRbrThr), 'a');
    EXPECT_EQ(in(uart::kIirFcr), 0x02);  // THRE still pending
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
}

TEST_F(Serial16550aTest, RxDataAvailableHasPriorityOverThre)
{
    out(uart::kMcr, uart::kMcrOut2);
    out(uart::kIer, uart::kIerErbfi | uart::kIerEtbei);
    host_sends({'h', 'i'});  // non-FIFO: RBR holds one byte, the second overruns
    EXPECT_TRUE(line());
    EXPECT_EQ(in(uart::kLsr), 0x63);  // DR | OE | THRE | TEMT
    EXPECT_EQ(in(uart::kLsr), 0x61);  // OE cleared by the read
    EXPECT_EQ(in(uart::kIirFcr), 0x04);
    EXPECT_EQ(in(uart::kIirFcr), 0x04);  // not cleared by IIR reads
    EXPECT_EQ(in(uart::kRbrThr), 'i');   // 16450 mode: the later byte overwrote RBR
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(in(uart::kIirFcr), 0x02);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    EXPECT_FALSE(line());
    EXPECT_EQ(in(uart::kRbrThr), 'i');  // empty RBR reads the last byte again
    EXPECT_EQ(uart_.stats().empty_rbr_reads, 1u);
}

TEST_F(Serial16550aTest, LineStatusInterruptHasTopPriority)
{
    out(uart::kIirFcr, 0x01);  // FIFO, trigger 1
    out(uart::kMcr, uart::kMcrOut2);
    out(uart::kIer, 0x0f);
    std::vector<uint8_t> bytes(17);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>('A' + i);
    EXPECT_EQ(uart_.receive(bytes), 16u);
    EXPECT_EQ(uart_.rx_room(), 0u);
    EXPECT_EQ(in(uart::kIirFcr), 0xc6);
    EXPECT_EQ(in(uart::kLsr), 0x63);  // reading LSR clears OE and the interrupt
    EXPECT_EQ(in(uart::kIirFcr), 0xc4);
    // FIFO mode: the FIFO kept its 16 bytes; the 17th was lost.
    for (size_t i = 0; i < 16; ++i) EXPECT_EQ(in(uart::kRbrThr), 'A' + i);
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(uart_.stats().rx_overruns, 1u);
    EXPECT_EQ(uart_.stats().rx_bytes, 16u);
}

TEST_F(Serial16550aTest, FifoTriggerLevelSelectsDataAvailableOrTimeout)
{
    out(uart::kIirFcr, 0x81);  // FIFO, trigger 8
    out(uart::kIer, uart::kIerErbfi);
    host_sends({1, 2, 3});
    EXPECT_EQ(in(uart::kIirFcr), 0xcc);  // below trigger: character timeout (untimed)
    host_sends({4, 5, 6, 7, 8});
    EXPECT_EQ(in(uart::kIirFcr), 0xc4);  // at trigger level
    EXPECT_EQ(in(uart::kRbrThr), 1);
    EXPECT_EQ(in(uart::kIirFcr), 0xcc);  // dropped below it
    out(uart::kIirFcr, 0xc1);            // trigger 14, no clear: FIFO keeps its data
    EXPECT_EQ(in(uart::kLsr), 0x61);
    EXPECT_EQ(in(uart::kRbrThr), 2);
}

TEST_F(Serial16550aTest, FifoClearAndModeChangeEmptyRxFifo)
{
    out(uart::kIirFcr, 0x01);
    host_sends({1, 2, 3});
    EXPECT_EQ(in(uart::kLsr), 0x61);
    out(uart::kIirFcr, 0x05);  // clear TX only
    EXPECT_EQ(in(uart::kLsr), 0x61);
    out(uart::kIirFcr, 0x03);  // clear RX
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(uart_.rx_room(), 16u);
    host_sends({4});
    out(uart::kIirFcr, 0x00);  // leaving FIFO mode clears the FIFOs
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(uart_.rx_room(), 1u);
    host_sends({5});
    out(uart::kIirFcr, 0x01);  // entering FIFO mode clears too
    EXPECT_EQ(in(uart::kLsr), 0x60);
}

TEST_F(Serial16550aTest, LoopbackMapsMcrToMsrWithDeltas)
{
    // Linux's test: MCR = LOOP | RTS | OUT2 must read MSR[7:4] = CTS | DCD.
    out(uart::kMcr, 0x1a);
    EXPECT_EQ(in(uart::kMsr), 0x92);  // CTS | DCD, DSR dropped: DDSR
    EXPECT_EQ(in(uart::kMsr), 0x90);  // deltas cleared by the read
    out(uart::kMcr, 0x14);            // LOOP | OUT1: RI on, CTS and DCD off
    EXPECT_EQ(in(uart::kMsr), 0x49);  // RI | DDCD | DCTS (no TERI: leading edge)
    out(uart::kMcr, 0x10);
    EXPECT_EQ(in(uart::kMsr), 0x04);  // TERI: RI went off
    out(uart::kMcr, 0x11);
    EXPECT_EQ(in(uart::kMsr), 0x22);  // DTR -> DSR
    out(uart::kMcr, 0x00);            // back to the host lines
    EXPECT_EQ(in(uart::kMsr), 0xb9);
    EXPECT_EQ(in(uart::kMsr), 0xb0);
}

TEST_F(Serial16550aTest, LoopbackSendsTxToRxNotToSink)
{
    out(uart::kMcr, uart::kMcrLoop);
    out(uart::kRbrThr, 0x42);
    EXPECT_TRUE(sent_.empty());
    EXPECT_EQ(in(uart::kLsr), 0x61);
    EXPECT_EQ(in(uart::kRbrThr), 0x42);
    host_sends({'z'});  // the serial input is disconnected in loopback
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(uart_.stats().rx_dropped_loopback, 1u);
    EXPECT_EQ(uart_.rx_room(), 0u);
}

TEST_F(Serial16550aTest, ModemStatusInterruptClearedByMsrRead)
{
    out(uart::kIer, uart::kIerEdssi);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    out(uart::kMcr, 0x1a);
    EXPECT_EQ(in(uart::kIirFcr), 0x00);
    EXPECT_FALSE(line());  // loopback forces OUT2 inactive: the PC gate is closed
    in(uart::kMsr);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
}

TEST_F(Serial16550aTest, Out2GatesTheIrqLine)
{
    out(uart::kIer, uart::kIerErbfi);
    host_sends({'q'});
    EXPECT_EQ(in(uart::kIirFcr), 0x04);
    EXPECT_FALSE(line());
    EXPECT_FALSE(uart_.irq_level());
    out(uart::kMcr, uart::kMcrOut2);
    EXPECT_TRUE(line());
    EXPECT_TRUE(uart_.irq_level());
    EXPECT_TRUE(irqs_.level(kIrq));
    out(uart::kMcr, uart::kMcrOut2 | uart::kMcrLoop);
    EXPECT_FALSE(line());
    out(uart::kMcr, uart::kMcrOut2 | uart::kMcrDtr | uart::kMcrRts);
    EXPECT_TRUE(line());
    out(uart::kMcr, 0);
    EXPECT_FALSE(line());
}

TEST_F(Serial16550aTest, LineSharedWithAnotherSourceStaysHigh)
{
    IrqLine other = irqs_.line(kIrq);
    other.set_level(true);
    out(uart::kMcr, uart::kMcrOut2);
    out(uart::kIer, uart::kIerEtbei);
    in(uart::kIirFcr);
    EXPECT_TRUE(line());  // the UART dropped its level, the other source holds it
    other.set_level(false);
    EXPECT_FALSE(line());
}

TEST_F(Serial16550aTest, LinuxAutoconfigProbesA16550A)
{
    // The IER existence test.
    const uint8_t scratch = in(uart::kIer);
    out(uart::kIer, 0);
    const uint8_t scratch2 = in(uart::kIer) & 0x0f;
    out(uart::kIer, 0x0f);
    const uint8_t scratch3 = in(uart::kIer) & 0x0f;
    out(uart::kIer, scratch);
    EXPECT_EQ(scratch2, 0);
    EXPECT_EQ(scratch3, 0x0f);
    // The loopback test.
    const uint8_t save_mcr = in(uart::kMcr);
    const uint8_t save_lcr = in(uart::kLcr);
    out(uart::kMcr, uart::kMcrLoop | 0x0a);
    EXPECT_EQ(in(uart::kMsr) & 0xf0, 0x90);
    out(uart::kMcr, save_mcr);
    // Clear a would-be EFR (LCR 0xbf), then enable FIFOs: IIR[7:6] = 3 -> 16550A.
    out(uart::kLcr, 0xbf);
    out(uart::kIirFcr, 0);
    out(uart::kLcr, 0);
    out(uart::kIirFcr, uart::kFcrEnable);
    EXPECT_EQ(in(uart::kIirFcr) >> 6, 3);
    // 16550A variants probe: no EFR behind LCR 0x80 / 0xbf (reads IIR, non-zero).
    out(uart::kLcr, 0x80);
    EXPECT_NE(in(uart::kIirFcr), 0);
    out(uart::kLcr, 0xbf);
    EXPECT_NE(in(uart::kIirFcr), 0);
    // Not a TI16750: IIR bit 5 stays 0 with and without DLAB.
    out(uart::kLcr, 0);
    out(uart::kIirFcr, 0x21);
    EXPECT_EQ(in(uart::kIirFcr) >> 5, 6);
    out(uart::kLcr, 0x80);
    out(uart::kIirFcr, 0x21);
    EXPECT_EQ(in(uart::kIirFcr) >> 5, 6);
    out(uart::kLcr, 0);
    // Not an XScale: IER bit 6 does not stick.
    out(uart::kIer, 0x40);
    EXPECT_EQ(in(uart::kIer) & 0x40, 0);
    out(uart::kIer, 0);
    out(uart::kLcr, save_lcr);
    EXPECT_TRUE(sent_.empty());
}

TEST_F(Serial16550aTest, LinuxSizeFifoCountsSixteen)
{
    // size_fifo(): loopback, 256 bytes out, count bytes back while LSR.DR.
    out(uart::kIirFcr, uart::kFcrEnable | uart::kFcrClearRx | uart::kFcrClearTx);
    out(uart::kMcr, uart::kMcrLoop);
    out(uart::kLcr, 0x80);
    out(uart::kRbrThr, 1);
    out(uart::kIer, 0);
    out(uart::kLcr, 0x03);
    for (int i = 0; i < 256; ++i) out(uart::kRbrThr, static_cast<uint8_t>(i));
    int count = 0;
    while ((in(uart::kLsr) & uart::kLsrDr) && count < 256) {
        in(uart::kRbrThr);
        ++count;
    }
    EXPECT_EQ(count, 16);
    EXPECT_TRUE(sent_.empty());
}

TEST_F(Serial16550aTest, LinuxAutoconfigIrqSeesTheIrq)
{
    // autoconfig_irq(): the IRQ must go up after this sequence.
    out(uart::kMcr, uart::kMcrOut1 | uart::kMcrOut2);
    out(uart::kMcr, 0);
    out(uart::kMcr, uart::kMcrDtr | uart::kMcrRts | uart::kMcrOut2);
    out(uart::kIer, 0x0f);
    in(uart::kLsr);
    in(uart::kRbrThr);
    in(uart::kIirFcr);
    in(uart::kMsr);
    irqs_.clear_events();
    out(uart::kRbrThr, 0xff);
    EXPECT_TRUE(line());
    ASSERT_FALSE(irqs_.events().empty());
    EXPECT_EQ(irqs_.events().back(), std::make_pair(kIrq, true));
}

TEST_F(Serial16550aTest, WideAccessIsSplitIntoBytes)
{
    out(uart::kScr, 0x77);
    uint8_t two[2] = {};
    EXPECT_TRUE(bus_.read(kBase + uart::kMsr, two));
    EXPECT_EQ(two[0], 0xb0);
    EXPECT_EQ(two[1], 0x77);
    const uint8_t w[2] = {'a', 'b'};
    EXPECT_TRUE(bus_.write(kBase + uart::kRbrThr, w));  // THR then IER
    EXPECT_EQ(sent_, std::vector<uint8_t>{'a'});
    EXPECT_EQ(in(uart::kIer), 'b' & 0x0f);
    EXPECT_EQ(uart_.stats().wide_accesses, 2u);
}

TEST_F(Serial16550aTest, WritesToReadOnlyRegistersAreCountedAndIgnored)
{
    out(uart::kLsr, 0x00);
    out(uart::kMsr, 0x00);
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(in(uart::kMsr), 0xb0);
    EXPECT_EQ(uart_.stats().readonly_writes, 2u);
}

TEST_F(Serial16550aTest, ResetRestoresPowerOnState)
{
    out(uart::kIirFcr, 0x01);
    out(uart::kMcr, uart::kMcrOut2);
    out(uart::kIer, 0x0f);
    out(uart::kLcr, 0x1b);
    out(uart::kScr, 9);
    host_sends({1});
    EXPECT_TRUE(line());
    uart_.reset();
    EXPECT_FALSE(line());
    EXPECT_EQ(in(uart::kIer), 0x00);
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
    EXPECT_EQ(in(uart::kLcr), 0x00);
    EXPECT_EQ(in(uart::kMcr), 0x00);
    EXPECT_EQ(in(uart::kLsr), 0x60);
    EXPECT_EQ(in(uart::kMsr), 0xb0);
    EXPECT_EQ(in(uart::kScr), 0x00);
}

TEST_F(Serial16550aTest, ConcurrentReceiveAndGuestReadsLoseNothingCounted)
{
    out(uart::kIirFcr, 0x01);
    constexpr int kBytes = 20000;
    std::atomic<bool> done{false};
    uint64_t stored = 0;
    std::thread host([&] {
        for (int i = 0; i < kBytes; ++i) {
            const uint8_t b = static_cast<uint8_t>(i);
            stored += uart_.receive(std::span<const uint8_t>(&b, 1));
        }
        done = true;
    });
    uint64_t read = 0;
    while (!done || (in(uart::kLsr) & uart::kLsrDr)) {
        if (in(uart::kLsr) & uart::kLsrDr) {
            in(uart::kRbrThr);
            ++read;
        }
    }
    host.join();
    EXPECT_EQ(read, stored);
    EXPECT_EQ(stored + uart_.stats().rx_overruns, static_cast<uint64_t>(kBytes));
}

// ---- The host-side backlog (the default configuration) ----

class Serial16550aBacklogTest : public ::testing::Test {
protected:
    uint8_t in(uint64_t reg)
    {
        uint8_t v = 0;
        uart_.read(reg, std::span<uint8_t>(&v, 1));
        return v;
    }
    void out(uint64_t reg, uint8_t v) { uart_.write(reg, std::span<const uint8_t>(&v, 1)); }

    test::RecordingIrqSink irqs_;
    Serial16550a uart_{irqs_.line(kIrq), {}, 64};
};

TEST_F(Serial16550aBacklogTest, PasteLongerThanTheFifoArrivesWhole)
{
    out(uart::kIirFcr, 0x81);  // FIFO, trigger 8, as Linux sets it
    std::vector<uint8_t> paste(50);
    for (size_t i = 0; i < paste.size(); ++i) paste[i] = static_cast<uint8_t>(i);
    EXPECT_EQ(uart_.receive(paste), 50u);
    EXPECT_EQ(uart_.rx_room(), 64u - 34u);  // FIFO full, 34 waiting
    std::vector<uint8_t> got;
    while (in(uart::kLsr) & uart::kLsrDr) got.push_back(in(uart::kRbrThr));
    EXPECT_EQ(got, paste);
    EXPECT_EQ(in(uart::kLsr), 0x60);  // no overrun
    EXPECT_EQ(uart_.stats().rx_overruns, 0u);
    EXPECT_EQ(uart_.rx_room(), 16u + 64u);
}

TEST_F(Serial16550aBacklogTest, OverrunOnlyWhenTheBacklogIsFullToo)
{
    out(uart::kIirFcr, 0x01);
    std::vector<uint8_t> flood(16 + 64 + 3, 'f');
    EXPECT_EQ(uart_.receive(flood), 80u);
    EXPECT_EQ(uart_.rx_room(), 0u);
    EXPECT_EQ(in(uart::kLsr), 0x63);
    EXPECT_EQ(uart_.stats().rx_overruns, 3u);
}

TEST_F(Serial16550aBacklogTest, NonFifoModeFeedsOneByteAtATime)
{
    const std::vector<uint8_t> bytes = {'a', 'b', 'c'};
    uart_.receive(bytes);
    EXPECT_EQ(in(uart::kRbrThr), 'a');
    EXPECT_EQ(in(uart::kRbrThr), 'b');
    EXPECT_EQ(in(uart::kRbrThr), 'c');
    EXPECT_EQ(in(uart::kLsr), 0x60);
}

TEST_F(Serial16550aBacklogTest, HostBytesWaitWhileInLoopback)
{
    out(uart::kMcr, uart::kMcrLoop);
    const std::vector<uint8_t> bytes = {'w'};
    EXPECT_EQ(uart_.receive(bytes), 1u);
    EXPECT_EQ(in(uart::kLsr), 0x60);  // not seen by the guest in loopback
    out(uart::kRbrThr, 'L');          // loopback data is
    EXPECT_EQ(in(uart::kRbrThr), 'L');
    out(uart::kMcr, 0);
    EXPECT_EQ(in(uart::kLsr), 0x61);
    EXPECT_EQ(in(uart::kRbrThr), 'w');
}

TEST_F(Serial16550aBacklogTest, ReceiveRaisesTheLineForAnEnabledGuest)
{
    out(uart::kMcr, uart::kMcrOut2 | uart::kMcrDtr | uart::kMcrRts);
    out(uart::kIer, uart::kIerErbfi);
    const std::vector<uint8_t> bytes = {'1', '2'};
    uart_.receive(bytes);
    EXPECT_TRUE(irqs_.level(kIrq));
    EXPECT_EQ(in(uart::kIirFcr), 0x04);
    in(uart::kRbrThr);
    EXPECT_TRUE(irqs_.level(kIrq));  // the second byte moved up from the backlog
    in(uart::kRbrThr);
    EXPECT_FALSE(irqs_.level(kIrq));
    EXPECT_EQ(in(uart::kIirFcr), 0x01);
}

}  // namespace
}  // namespace kvmini
