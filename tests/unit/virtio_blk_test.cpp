// virtio-blk over the PCI transport, driven by the test driver exactly as a
// guest would (configuration cycles, BAR registers, rings in guest memory) on
// real temporary image files.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>

#include "devices/virtio/virtio_blk.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/unit/virtio_driver_harness.h"
#include "vmm/error.h"

namespace kvmini {
namespace {

using namespace virtio;
using namespace virtio::blk;
using test::Seg;
using test::TestMachine;
using test::VirtioPciDriver;
using Mode = VirtioPciDriver::Mode;
using namespace std::chrono_literals;

// A raw image file in the temporary directory, removed at the end.
class TempImage {
public:
    explicit TempImage(uint64_t bytes, uint8_t fill = 0, const char* stem = "kvmini-disk")
    {
        const char* dir = std::getenv("TMPDIR");
        std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/" + stem + "-XXXXXX";
        const int fd = ::mkstemp(tmpl.data());
        if (fd < 0) throw std::runtime_error("mkstemp failed");
        path_ = tmpl;
        std::vector<uint8_t> chunk(64 * 1024, fill);
        for (uint64_t done = 0; done < bytes; done += chunk.size())
            if (::write(fd, chunk.data(), std::min<uint64_t>(chunk.size(), bytes - done)) < 0)
                throw std::runtime_error("write failed");
        ::close(fd);
    }
    ~TempImage() { ::unlink(path_.c_str()); }
    const std::string& path() const { return path_; }

    // With plain open() + lseek() + read(), not through the device.
    std::vector<uint8_t> read(uint64_t offset, size_t len) const
    {
        std::vector<uint8_t> out(len);
        const int fd = ::open(path_.c_str(), O_RDONLY);
        EXPECT_GE(fd, 0);
        EXPECT_EQ(::lseek(fd, static_cast<off_t>(offset), SEEK_SET), static_cast<off_t>(offset));
        size_t got = 0;
        while (got < len) {
            const ssize_t n = ::read(fd, out.data() + got, len - got);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
        ::close(fd);
        EXPECT_EQ(got, len);
        return out;
    }
    uint64_t size() const
    {
        struct stat st {};
        ::stat(path_.c_str(), &st);
        return static_cast<uint64_t>(st.st_size);
    }
    uint64_t allocated_blocks() const
    {
        struct stat st {};
        ::stat(path_.c_str(), &st);
        return static_cast<uint64_t>(st.st_blocks);
    }

private:
    std::string path_;
};

std::vector<uint8_t> pattern(size_t len, uint8_t seed)
{
    std::vector<uint8_t> v(len);
    for (size_t i = 0; i < len; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 9));
    return v;
}

// The machine, one virtio-blk PCI device in it, and a driver for it.
struct BlkRig {
    explicit BlkRig(const DiskOptions& opts, Mode mode = Mode::kModern, bool transitional = true)
    {
        dev = std::make_unique<VirtioPciTransport>(m.mem, std::make_unique<VirtioBlk>(opts),
                                                   VirtioPciOptions{transitional});
        slot = m.plug(*dev);
        drv = std::make_unique<VirtioPciDriver>(m, slot, mode);
    }
    VirtioBlk& blk() { return static_cast<VirtioBlk&>(dev->device()); }

    // A guest buffer holding `data`.
    Seg out_buf(const std::vector<uint8_t>& data)
    {
        const uint64_t at = m.alloc(data.size(), 512);
        m.mem.write(at, data.data(), data.size());
        return Seg{at, static_cast<uint32_t>(data.size()), false};
    }
    Seg in_buf(uint32_t len, uint8_t poison = 0xcc)
    {
        const uint64_t at = m.alloc(len, 512);
        m.mem.fill(at, poison, len);
        return Seg{at, len, true};
    }
    std::vector<uint8_t> guest(const Seg& s)
    {
        std::vector<uint8_t> v(s.len);
        m.mem.read(s.gpa, v.data(), s.len);
        return v;
    }
    std::vector<uint8_t> guest(const std::vector<Seg>& segs)
    {
        std::vector<uint8_t> v;
        for (const Seg& s : segs) {
            auto part = guest(s);
            v.insert(v.end(), part.begin(), part.end());
        }
        return v;
    }
    Seg discard_segments(const std::vector<std::array<uint64_t, 3>>& segs)   // sector, count, flags
    {
        std::vector<uint8_t> raw;
        for (const auto& s : segs) {
            uint8_t e[kSegmentSize];
            const uint64_t sector = s[0];
            const uint32_t num = static_cast<uint32_t>(s[1]), flags = static_cast<uint32_t>(s[2]);
            le::store64(e, sector);
            le::store32(e + 8, num);
            le::store32(e + 12, flags);
            raw.insert(raw.end(), e, e + sizeof(e));
        }
        return out_buf(raw);
    }

    TestMachine m;
    std::unique_ptr<VirtioPciTransport> dev;
    uint8_t slot = 0;
    std::unique_ptr<VirtioPciDriver> drv;
};

constexpr uint64_t kImageBytes = 1 << 20;   // 2048 sectors

// --- The --disk option -------------------------------------------------------------

TEST(DiskOption, Parses)
{
    EXPECT_EQ(parse_disk_option("disk.img"), (DiskOptions{"disk.img", false, ""}));
    EXPECT_EQ(parse_disk_option("/a/b.raw,ro"), (DiskOptions{"/a/b.raw", true, ""}));
    EXPECT_EQ(parse_disk_option("x,serial=ABC,ro"), (DiskOptions{"x", true, "ABC"}));
    EXPECT_EQ(parse_disk_option("x,ro,rw"), (DiskOptions{"x", false, ""}));
    EXPECT_THROW(parse_disk_option(""), Error);
    EXPECT_THROW(parse_disk_option(",ro"), Error);
    EXPECT_THROW(parse_disk_option("x,bogus"), Error);
    EXPECT_THROW(parse_disk_option("x,"), Error);
    EXPECT_THROW(parse_disk_option("x,serial=123456789012345678901"), Error);
    try {
        parse_disk_option("img,fast");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("fast"), std::string::npos);
    }
}

// --- Opening the image ------------------------------------------------------------------

TEST(VirtioBlkOpen, MissingImageIsAnErrorNamingTheFile)
{
    const std::string path = "/nonexistent-dir-kvmini/disk.img";
    try {
        VirtioBlk blk(parse_disk_option(path));
        FAIL() << "opened a missing file";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
    }
}

TEST(VirtioBlkOpen, DirectoryIsRefused)
{
    EXPECT_THROW(VirtioBlk blk(DiskOptions{"/tmp", true, ""}), Error);
}

TEST(VirtioBlkOpen, SecondWriterOnTheSameImageIsRefused)
{
    TempImage img(kImageBytes);
    VirtioBlk first(DiskOptions{img.path(), false, ""});
    try {
        VirtioBlk second(DiskOptions{img.path(), false, ""});
        FAIL() << "two writers on one image";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(img.path()), std::string::npos);
    }
}

TEST(VirtioBlkOpen, CapacityIsWholeSectors)
{
    TempImage img(kImageBytes + 100);
    VirtioBlk blk(DiskOptions{img.path(), true, ""});
    EXPECT_EQ(blk.capacity_sectors(), kImageBytes / 512);
}

// --- PCI identity and configuration --------------------------------------------------------

TEST(VirtioBlkPci, TransitionalIdentityAndCapabilities)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    auto& m = r.m;
    EXPECT_EQ(m.cfg_read(r.slot, pci::kVendorId, 2), kPciVendor);
    EXPECT_EQ(m.cfg_read(r.slot, pci::kDeviceId, 2), kPciTransitionalBlk);
    EXPECT_EQ(m.cfg_read(r.slot, pci::kRevisionId, 1), 0u);
    EXPECT_EQ(m.cfg_read(r.slot, pci::kSubsystemId, 2), kDeviceType);
    EXPECT_EQ(m.cfg_read(r.slot, pci::kBar0, 4) & 1u, 1u);   // legacy I/O BAR
    EXPECT_TRUE(r.drv->has_modern());
    EXPECT_EQ(r.drv->msix_vectors(), 2u);   // config + one queue
    EXPECT_EQ(r.drv->config_read(kCfgCapacity, 8), kImageBytes / 512);
    EXPECT_EQ(r.drv->config_read(kCfgBlkSize, 4), 512u);
    EXPECT_EQ(r.drv->config_read(kCfgSegMax, 4), VirtioBlk::kSegMax);
    EXPECT_EQ(r.drv->config_read(kCfgSizeMax, 4), VirtioBlk::kSizeMax);
    EXPECT_EQ(r.drv->common_read(common::kNumQueues, 2), 1u);
    r.drv->common_write(common::kQueueSelect, 2, 0);
    EXPECT_EQ(r.drv->common_read(common::kQueueSize, 2), VirtioBlk::kQueueSize);
    r.drv->common_write(common::kQueueSelect, 2, 1);
    EXPECT_EQ(r.drv->common_read(common::kQueueSize, 2), 0u);   // no queue 1
}

TEST(VirtioBlkPci, PciConfigAccessCapabilityReachesTheBars)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    auto& d = *r.drv;
    ASSERT_TRUE(d.has_pci_cfg_cap());
    const uint8_t bar = VirtioPciTransport::kModernBar;
    EXPECT_EQ(d.pci_cfg_read(bar, VirtioPciTransport::kCommonOffset + common::kNumQueues, 2), 1u);
    EXPECT_EQ(d.pci_cfg_read(bar, VirtioPciTransport::kDeviceCfgOffset + kCfgCapacity, 4), kImageBytes / 512);
    d.pci_cfg_write(bar, VirtioPciTransport::kCommonOffset + common::kDeviceStatus, 1, kStatusAcknowledge);
    EXPECT_EQ(d.status(), kStatusAcknowledge);
    // The legacy BAR through the window too; a bad length does nothing.
    EXPECT_EQ(d.pci_cfg_read(VirtioPciTransport::kLegacyBar, legacy::kDeviceStatus, 1), kStatusAcknowledge);
    d.pci_cfg_write(bar, VirtioPciTransport::kCommonOffset + common::kDeviceStatus, 3, 0);
    EXPECT_EQ(d.status(), kStatusAcknowledge);
    EXPECT_EQ(d.pci_cfg_read(7, 0, 4), d.pci_cfg_read(7, 0, 4));   // no such BAR: harmless
}

TEST(VirtioBlkPci, ModernOnlyIdentity)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""}, Mode::kModern, /*transitional=*/false);
    EXPECT_EQ(r.m.cfg_read(r.slot, pci::kDeviceId, 2), kPciModernDeviceBase + kDeviceType);
    EXPECT_GE(r.m.cfg_read(r.slot, pci::kRevisionId, 1), 1u);
    EXPECT_EQ(r.m.cfg_read(r.slot, pci::kBar0, 4), 0u);   // no legacy BAR
    EXPECT_TRUE(r.drv->has_modern());
}

TEST(VirtioBlkPci, OfferedFeatures)
{
    TempImage img(kImageBytes);
    BlkRig rw(DiskOptions{img.path(), false, ""});
    const uint64_t f = rw.drv->device_features();
    for (unsigned bit : {kFVersion1, kFRingEventIdx, kFRingIndirectDesc, kFSegMax, kFSizeMax, kFBlkSize, kFFlush,
                         kFDiscard, kFWriteZeroes})
        EXPECT_TRUE(f & feature(bit)) << bit;
    EXPECT_FALSE(f & feature(kFRo));
}

TEST(VirtioBlkPci, FeaturesOkNeedsVersion1AndOnlyOfferedBits)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    auto& d = *r.drv;
    d.set_status(0);
    d.set_status(kStatusAcknowledge | kStatusDriver);
    d.common_write(common::kDriverFeatureSelect, 4, 0);
    d.common_write(common::kDriverFeature, 4, feature(kFFlush));
    d.common_write(common::kDriverFeatureSelect, 4, 1);
    d.common_write(common::kDriverFeature, 4, 0);   // no VERSION_1
    d.set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    EXPECT_FALSE(d.status() & kStatusFeaturesOk);

    d.set_status(0);
    d.set_status(kStatusAcknowledge | kStatusDriver);
    d.common_write(common::kDriverFeatureSelect, 4, 1);
    d.common_write(common::kDriverFeature, 4, 1 | (1u << 20));   // VERSION_1 + an unoffered bit
    d.set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    EXPECT_FALSE(d.status() & kStatusFeaturesOk);

    EXPECT_TRUE(d.negotiate(feature(kFVersion1)));
    EXPECT_EQ(d.features(), feature(kFVersion1));
}

// --- I/O -----------------------------------------------------------------------------------------

TEST(VirtioBlkIo, WriteReadFlushRoundTripWithMsix)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(/*msix=*/true));
    const uint32_t queue_msi = VirtioPciDriver::kMsiVectorBase + 1, config_msi = VirtioPciDriver::kMsiVectorBase;

    const auto data = pattern(4096, 1);
    auto w = r.drv->blk(kTOut, 10, {r.out_buf(data)});
    ASSERT_TRUE(w.completed);
    EXPECT_EQ(w.status, kSOk);
    EXPECT_EQ(w.used_len, 1u);
    EXPECT_TRUE(r.m.irqs.wait_msi_count(queue_msi, 1));

    const Seg in = r.in_buf(4096);
    auto rd = r.drv->blk(kTIn, 10, {in});
    ASSERT_TRUE(rd.completed);
    EXPECT_EQ(rd.status, kSOk);
    EXPECT_EQ(rd.used_len, 4097u);
    EXPECT_EQ(r.guest(in), data);

    auto fl = r.drv->blk(kTFlush, 0, {});
    EXPECT_EQ(fl.status, kSOk);
    EXPECT_TRUE(r.m.irqs.wait_msi_count(queue_msi, 3));
    EXPECT_EQ(r.m.irqs.msi_count(config_msi), 0u);
    EXPECT_FALSE(r.m.irqs.level(r.drv->intx_gsi()));   // MSI-X on: no INTx

    // Written and flushed: it is in the file, read with plain read().
    EXPECT_EQ(img.read(10 * 512, 4096), data);
    EXPECT_EQ(img.read(0, 512), std::vector<uint8_t>(512, 0));
    EXPECT_EQ(r.blk().stats().writes, 1u);
    EXPECT_EQ(r.blk().stats().reads, 1u);
    EXPECT_EQ(r.blk().stats().flushes, 1u);
}

TEST(VirtioBlkIo, MultiSegmentDirectAndIndirect)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(true, feature(kFRingIndirectDesc)));
    ASSERT_TRUE(r.drv->features() & feature(kFRingIndirectDesc));

    const auto data = pattern(2048, 9);
    const std::vector<uint8_t> a(data.begin(), data.begin() + 512), b(data.begin() + 512, data.begin() + 1536),
        c(data.begin() + 1536, data.end());
    EXPECT_EQ(r.drv->blk(kTOut, 100, {r.out_buf(a), r.out_buf(b), r.out_buf(c)}).status, kSOk);
    EXPECT_EQ(img.read(100 * 512, 2048), data);

    // Read back in different pieces, through an indirect table.
    const std::vector<Seg> in{r.in_buf(1024), r.in_buf(512), r.in_buf(512)};
    auto rd = r.drv->blk(kTIn, 100, in, /*indirect=*/true);
    EXPECT_EQ(rd.status, kSOk);
    EXPECT_EQ(rd.used_len, 2049u);
    EXPECT_EQ(r.guest(in), data);

    // Write through an indirect table, read directly.
    const auto data2 = pattern(1024, 77);
    EXPECT_EQ(r.drv->blk(kTOut, 3, {r.out_buf(data2)}, true).status, kSOk);
    const Seg in2 = r.in_buf(1024);
    EXPECT_EQ(r.drv->blk(kTIn, 3, {in2}).status, kSOk);
    EXPECT_EQ(r.guest(in2), data2);
}

TEST(VirtioBlkIo, ManyRequestsWrapTheRing)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(true, 0, /*queue_size=*/8));
    for (unsigned i = 0; i < 40; ++i) {
        const auto data = pattern(512, static_cast<uint8_t>(i));
        ASSERT_EQ(r.drv->blk(kTOut, i, {r.out_buf(data)}).status, kSOk) << i;
    }
    for (unsigned i = 0; i < 40; ++i) EXPECT_EQ(img.read(i * 512, 512), pattern(512, static_cast<uint8_t>(i))) << i;
}

TEST(VirtioBlkIo, IntxWhenMsixIsOff)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(/*msix=*/false));
    const uint32_t gsi = r.drv->intx_gsi();
    EXPECT_EQ(r.m.cfg_read(r.slot, pci::kInterruptPin, 1), 1u);
    EXPECT_EQ(r.m.cfg_read(r.slot, pci::kInterruptLine, 1), gsi);

    EXPECT_EQ(r.drv->blk(kTFlush, 0, {}).status, kSOk);
    EXPECT_TRUE(r.m.irqs.wait_level(gsi, true));
    EXPECT_TRUE(r.m.cfg_read(r.slot, pci::kStatus, 2) & pci::kStatusInterrupt);
    EXPECT_EQ(r.drv->read_isr(), kIsrQueue);   // reading clears it and lowers the line
    EXPECT_FALSE(r.m.irqs.level(gsi));
    EXPECT_EQ(r.drv->read_isr(), 0);
    EXPECT_EQ(r.m.irqs.msi_total(), 0u);

    // Interrupt Disable in the command register keeps the line low.
    const uint16_t cmd = static_cast<uint16_t>(r.m.cfg_read(r.slot, pci::kCommand, 2));
    r.m.cfg_write(r.slot, pci::kCommand, 2, cmd | pci::kCommandIntxDisable);
    EXPECT_EQ(r.drv->blk(kTFlush, 0, {}).status, kSOk);
    std::this_thread::sleep_for(20ms);
    EXPECT_FALSE(r.m.irqs.level(gsi));
    r.m.cfg_write(r.slot, pci::kCommand, 2, cmd);
    EXPECT_TRUE(r.m.irqs.level(gsi));
    EXPECT_EQ(r.drv->read_isr(), kIsrQueue);
}

TEST(VirtioBlkIo, LegacyInterfaceWithIntx)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""}, Mode::kLegacy);
    // Legacy drivers see only the low 32 feature bits: no VERSION_1.
    EXPECT_EQ(r.drv->device_features() >> 32, 0u);
    ASSERT_TRUE(r.drv->init_blk(/*msix=*/false, feature(kFRingIndirectDesc)));
    EXPECT_EQ(r.drv->config_read(kCfgCapacity, 8), kImageBytes / 512);
    EXPECT_EQ(r.drv->queue(0).size, VirtioBlk::kQueueSize);

    const auto data = pattern(1024, 5);
    EXPECT_EQ(r.drv->blk(kTOut, 7, {r.out_buf(data)}).status, kSOk);
    const Seg in = r.in_buf(1024);
    EXPECT_EQ(r.drv->blk(kTIn, 7, {in}, /*indirect=*/true).status, kSOk);
    EXPECT_EQ(r.guest(in), data);
    EXPECT_TRUE(r.m.irqs.wait_level(r.drv->intx_gsi(), true));
    EXPECT_EQ(r.drv->read_isr(), kIsrQueue);
    EXPECT_FALSE(r.m.irqs.level(r.drv->intx_gsi()));
    EXPECT_EQ(img.read(7 * 512, 1024), data);
}

TEST(VirtioBlkIo, LegacyInterfaceWithMsix)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, "LEG"}, Mode::kLegacy);
    ASSERT_TRUE(r.drv->init_blk(/*msix=*/true));
    // With MSI-X on, device config moves from 20 to 24.
    EXPECT_EQ(r.drv->config_read(kCfgCapacity, 8), kImageBytes / 512);
    EXPECT_EQ(r.drv->legacy_read(legacy::kConfigMsixVector, 2), 0u);
    const Seg id = r.in_buf(kIdBytes);
    EXPECT_EQ(r.drv->blk(kTGetId, 0, {id}).status, kSOk);
    EXPECT_TRUE(r.m.irqs.wait_msi_count(VirtioPciDriver::kMsiVectorBase + 1, 1));
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.guest(id).data()), 3), "LEG");
}

TEST(VirtioBlkIo, EventIdxSuppressesInterruptsAndPublishesAvailEvent)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(true, feature(kFRingEventIdx)));
    ASSERT_TRUE(r.drv->features() & feature(kFRingEventIdx));
    const uint32_t msi = VirtioPciDriver::kMsiVectorBase + 1;

    r.drv->set_used_event(0, 0);
    EXPECT_EQ(r.drv->blk(kTFlush, 0, {}).status, kSOk);   // used idx 1: crosses 0
    EXPECT_TRUE(r.m.irqs.wait_msi_count(msi, 1));
    EXPECT_EQ(r.drv->avail_event(0), 1);                  // "notify me from avail idx 1"

    r.drv->set_used_event(0, 100);                         // far ahead: no interrupts
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r.drv->blk(kTFlush, 0, {}).status, kSOk);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(r.m.irqs.msi_count(msi), 1u);
    EXPECT_EQ(r.drv->avail_event(0), 4);

    r.drv->set_used_event(0, 4);                           // the next completion (idx 5) crosses it
    EXPECT_EQ(r.drv->blk(kTFlush, 0, {}).status, kSOk);
    EXPECT_TRUE(r.m.irqs.wait_msi_count(msi, 2));
}

TEST(VirtioBlkIo, NotifyThroughTheEventfdAsKvmIoeventfdWould)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    std::vector<std::pair<VirtioNotifyRegion, bool>> seen;
    r.dev->set_notify_observer([&](const VirtioNotifyRegion& reg, bool added) { seen.emplace_back(reg, added); });
    // Replayed for the current mappings: legacy port (datamatch) and modern MMIO.
    ASSERT_EQ(seen.size(), 2u);
    const auto regions = r.dev->notify_regions();
    ASSERT_EQ(regions.size(), 2u);
    const VirtioNotifyRegion& legacy_reg = regions[0].pio ? regions[0] : regions[1];
    const VirtioNotifyRegion& modern_reg = regions[0].pio ? regions[1] : regions[0];
    EXPECT_EQ(legacy_reg.datamatch, 0u);
    EXPECT_EQ(legacy_reg.addr, r.drv->bar_address(0) + legacy::kQueueNotify);
    EXPECT_EQ(modern_reg.addr, r.drv->bar_address(VirtioPciTransport::kModernBar) + VirtioPciTransport::kNotifyOffset);
    EXPECT_FALSE(modern_reg.datamatch.has_value());
    EXPECT_EQ(modern_reg.eventfd, r.dev->notify_eventfd(0));
    EXPECT_EQ(r.dev->notify_eventfd(1), -1);

    ASSERT_TRUE(r.drv->init_blk(true));
    // Publish without the MMIO notify; signal the eventfd directly.
    const uint64_t hdr = r.m.alloc(16, 16), st = r.m.alloc(1);
    const uint32_t h[4] = {kTFlush, 0, 0, 0};
    r.m.mem.write(hdr, h, sizeof(h));
    r.drv->write_desc(0, 0, hdr, 16, kDescFNext, 1);
    r.drv->write_desc(0, 1, st, 1, kDescFWrite, 0);
    r.drv->queue(0).free.clear();
    r.drv->publish(0, 0);
    const uint64_t one = 1;
    ASSERT_EQ(::write(r.dev->notify_eventfd(0), &one, 8), 8);
    ASSERT_TRUE(r.drv->wait_used(0).has_value());
    EXPECT_EQ(r.m.mem.read_obj<uint8_t>(st), kSOk);

    // The guest moves BAR4: the observer hears removal then addition.
    seen.clear();
    const uint16_t cmd = static_cast<uint16_t>(r.m.cfg_read(r.slot, pci::kCommand, 2));
    r.m.cfg_write(r.slot, pci::kCommand, 2, cmd & ~pci::kCommandMemory);
    r.m.cfg_write(r.slot, pci::kBar0 + 4 * VirtioPciTransport::kModernBar, 4, 0xd800'0000);
    r.m.cfg_write(r.slot, pci::kCommand, 2, cmd);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_FALSE(seen[0].second);
    EXPECT_EQ(seen[0].first.addr, modern_reg.addr);
    EXPECT_TRUE(seen[1].second);
    EXPECT_EQ(seen[1].first.addr, 0xd800'0000u + VirtioPciTransport::kNotifyOffset);
}

TEST(VirtioBlkIo, ReadOnlyDiskRefusesWrites)
{
    TempImage img(kImageBytes, 0x5a);
    BlkRig r(DiskOptions{img.path(), true, ""});
    EXPECT_TRUE(r.drv->device_features() & feature(kFRo));
    EXPECT_FALSE(r.drv->device_features() & feature(kFDiscard));
    ASSERT_TRUE(r.drv->init_blk(true));
    ASSERT_TRUE(r.drv->features() & feature(kFRo));

    EXPECT_EQ(r.drv->blk(kTOut, 0, {r.out_buf(pattern(512, 3))}).status, kSIoErr);
    EXPECT_EQ(r.drv->blk(kTDiscard, 0, {r.discard_segments({{0, 8, 0}})}).status, kSIoErr);
    EXPECT_EQ(r.drv->blk(kTWriteZeroes, 0, {r.discard_segments({{0, 8, 0}})}).status, kSIoErr);
    EXPECT_EQ(img.read(0, 4096), std::vector<uint8_t>(4096, 0x5a));
    const Seg in = r.in_buf(512);
    EXPECT_EQ(r.drv->blk(kTIn, 0, {in}).status, kSOk);
    EXPECT_EQ(r.guest(in), std::vector<uint8_t>(512, 0x5a));
    EXPECT_EQ(r.drv->blk(kTFlush, 0, {}).status, kSOk);
}

TEST(VirtioBlkIo, GetId)
{
    TempImage img(kImageBytes, 0, "a-rather-long-image-name-for-get-id");
    {
        BlkRig r(DiskOptions{img.path(), false, ""});
        ASSERT_TRUE(r.drv->init_blk(true));
        const Seg id = r.in_buf(kIdBytes);
        auto res = r.drv->blk(kTGetId, 0, {id});
        EXPECT_EQ(res.status, kSOk);
        EXPECT_EQ(res.used_len, kIdBytes + 1);
        const std::string base = img.path().substr(img.path().rfind('/') + 1);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.guest(id).data()), kIdBytes), base.substr(0, 20));
    }
    BlkRig r(DiskOptions{img.path(), false, "SER-1"});
    ASSERT_TRUE(r.drv->init_blk(true));
    const Seg id = r.in_buf(kIdBytes);
    EXPECT_EQ(r.drv->blk(kTGetId, 0, {id}).status, kSOk);
    std::vector<uint8_t> want(kIdBytes, 0);
    std::memcpy(want.data(), "SER-1", 5);
    EXPECT_EQ(r.guest(id), want);   // NUL padded
}

TEST(VirtioBlkIo, DiscardAndWriteZeroes)
{
    TempImage img(kImageBytes, 0xab);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(true));
    ASSERT_TRUE(r.drv->features() & feature(kFDiscard));
    ASSERT_TRUE(r.drv->features() & feature(kFWriteZeroes));
    EXPECT_EQ(r.drv->config_read(kCfgMaxDiscardSeg, 4), VirtioBlk::kMaxDiscardSeg);
    EXPECT_EQ(r.drv->config_read(kCfgWriteZeroesMayUnmap, 1), 1u);
    const std::vector<uint8_t> ab(4096, 0xab), zero(4096, 0);

    // WRITE_ZEROES without and with unmap, two segments in one request.
    EXPECT_EQ(r.drv->blk(kTWriteZeroes, 0, {r.discard_segments({{8, 8, 0}, {32, 8, kSegFlagUnmap}})}).status, kSOk);
    EXPECT_EQ(img.read(0, 4096), ab);
    EXPECT_EQ(img.read(8 * 512, 4096), zero);
    EXPECT_EQ(img.read(16 * 512, 4096), ab);
    EXPECT_EQ(img.read(32 * 512, 4096), zero);
    const Seg in = r.in_buf(4096);
    EXPECT_EQ(r.drv->blk(kTIn, 32, {in}).status, kSOk);
    EXPECT_EQ(r.guest(in), zero);

    // DISCARD punches a hole: the blocks are given back.
    const uint64_t blocks = img.allocated_blocks();
    EXPECT_EQ(r.drv->blk(kTDiscard, 0, {r.discard_segments({{256, 512, 0}})}).status, kSOk);
    EXPECT_LT(img.allocated_blocks(), blocks);
    EXPECT_EQ(img.read(255 * 512, 512), std::vector<uint8_t>(512, 0xab));
    EXPECT_EQ(img.read(768 * 512, 512), std::vector<uint8_t>(512, 0xab));
    EXPECT_EQ(img.size(), kImageBytes);   // holes keep the size

    // 5.2.6.2: unmap on a discard, or an unknown flag, is UNSUPP.
    EXPECT_EQ(r.drv->blk(kTDiscard, 0, {r.discard_segments({{0, 8, kSegFlagUnmap}})}).status, kSUnsupp);
    EXPECT_EQ(r.drv->blk(kTWriteZeroes, 0, {r.discard_segments({{0, 8, 4}})}).status, kSUnsupp);
    // Out of range, too many segments, a ragged segment list: IOERR.
    EXPECT_EQ(r.drv->blk(kTWriteZeroes, 0, {r.discard_segments({{2040, 16, 0}})}).status, kSIoErr);
    EXPECT_EQ(r.drv->blk(kTDiscard, 0, {r.discard_segments({{~0ull - 4, 8, 0}})}).status, kSIoErr);
    std::vector<std::array<uint64_t, 3>> many(VirtioBlk::kMaxDiscardSeg + 1, {0, 1, 0});
    EXPECT_EQ(r.drv->blk(kTDiscard, 0, {r.discard_segments(many)}).status, kSIoErr);
    EXPECT_EQ(r.drv->blk(kTDiscard, 0, {r.out_buf(std::vector<uint8_t>(10, 0))}).status, kSIoErr);
    EXPECT_EQ(img.read(0, 4096), ab);
}

TEST(VirtioBlkIo, BadRequestsFailWithoutBreakingTheDevice)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(true));
    const uint64_t cap = kImageBytes / 512;
    EXPECT_EQ(r.drv->blk(kTIn, cap, {r.in_buf(512)}).status, kSIoErr);             // past the end
    EXPECT_EQ(r.drv->blk(kTIn, cap - 1, {r.in_buf(1024)}).status, kSIoErr);        // runs past the end
    EXPECT_EQ(r.drv->blk(kTOut, ~0ull, {r.out_buf(pattern(512, 1))}).status, kSIoErr);   // overflow
    EXPECT_EQ(r.drv->blk(kTIn, 0, {r.in_buf(100)}).status, kSIoErr);               // not whole sectors
    EXPECT_EQ(r.drv->blk(kTOut, 0, {r.out_buf(pattern(700, 1))}).status, kSIoErr);
    EXPECT_EQ(r.drv->blk(99, 0, {}).status, kSUnsupp);                            // unknown type
    EXPECT_EQ(r.drv->blk(kTIn, cap - 1, {r.in_buf(512)}).status, kSOk);            // the last sector is fine

    // A header shorter than 16 bytes.
    const uint64_t hdr = r.m.alloc(8), st = r.m.alloc(1);
    r.m.mem.fill(st, 0xff, 1);
    r.drv->submit(0, {{hdr, 8, false}, {st, 1, true}});
    auto u = r.drv->wait_used(0);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->len, 1u);
    EXPECT_EQ(r.m.mem.read_obj<uint8_t>(st), kSIoErr);

    // No writable buffer at all: nowhere to put a status, used length 0.
    const uint64_t h2 = r.m.alloc(16);
    r.drv->submit(0, {{h2, 16, false}});
    u = r.drv->wait_used(0);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->len, 0u);
    EXPECT_EQ(r.blk().stats().malformed, 1u);

    // Data buffer outside guest RAM: IOERR, nothing written outside RAM.
    const uint64_t h3 = r.m.alloc(16), s3 = r.m.alloc(1);
    const uint32_t rd[4] = {kTIn, 0, 0, 0};
    r.m.mem.write(h3, rd, 16);
    r.drv->submit(0, {{h3, 16, false}, {r.m.mem.size() + 0x10000, 512, true}, {s3, 1, true}});
    u = r.drv->wait_used(0);
    ASSERT_TRUE(u);
    EXPECT_EQ(r.m.mem.read_obj<uint8_t>(s3), kSIoErr);
    // Status byte outside RAM: completed with used length 0.
    r.drv->submit(0, {{h3, 16, false}, {r.m.alloc(512), 512, true}, {0xffff'ffff'ffff'fff0, 1, true}});
    u = r.drv->wait_used(0);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->len, 0u);

    EXPECT_FALSE(r.drv->broken());
    EXPECT_EQ(r.drv->blk(kTFlush, 0, {}).status, kSOk);
}

// --- Durability across a killed VMM ----------------------------------------------------------------

TEST(VirtioBlkDurability, FlushedDataSurvivesSigkill)
{
    TempImage img(kImageBytes);
    const auto data = pattern(8192, 42);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        // The "VMM": a device and a driver that writes and flushes.
        ::close(fds[0]);
        char verdict = 'F';
        try {
            BlkRig r(DiskOptions{img.path(), false, ""});
            if (r.drv->init_blk(true) && r.drv->blk(kTOut, 64, {r.out_buf(data)}).status == kSOk &&
                r.drv->blk(kTFlush, 0, {}).status == kSOk)
                verdict = 'K';
            [[maybe_unused]] ssize_t n = ::write(fds[1], &verdict, 1);
            for (;;) ::pause();   // killed here, with the device and its thread alive
        } catch (...) {
        }
        [[maybe_unused]] ssize_t n = ::write(fds[1], &verdict, 1);
        ::_exit(1);
    }
    ::close(fds[1]);
    pollfd p{fds[0], POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 20000), 1) << "child did not report";
    char verdict = 0;
    ASSERT_EQ(::read(fds[0], &verdict, 1), 1);
    ::close(fds[0]);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ASSERT_EQ(verdict, 'K');
    EXPECT_EQ(img.read(64 * 512, data.size()), data);
    // The lock died with the process: the image can be opened again.
    EXPECT_NO_THROW(VirtioBlk again(DiskOptions{img.path(), false, ""}));
}

// --- Hostile drivers, end to end -----------------------------------------------------------------

// Each writes a malformed chain (or ring state) into queue 0 and notifies;
// the device must set DEVICE_NEEDS_RESET, send the config interrupt, and come
// back after a reset.
struct HostileCase {
    const char* name;
    std::function<void(VirtioPciDriver&, uint64_t buf)> make;
};

class VirtioBlkHostile : public ::testing::TestWithParam<HostileCase> {};

TEST_P(VirtioBlkHostile, MarksTheDeviceBrokenAndRecoversAfterReset)
{
    TempImage img(kImageBytes, 0x11);
    BlkRig r(DiskOptions{img.path(), false, ""});
    ASSERT_TRUE(r.drv->init_blk(true, feature(kFRingIndirectDesc), 16));
    auto& d = *r.drv;
    const uint64_t buf = r.m.alloc(4096);
    d.queue(0).free.clear();   // the test writes descriptors by hand
    GetParam().make(d, buf);
    d.notify(0);

    EXPECT_TRUE(r.m.irqs.wait_msi_count(VirtioPciDriver::kMsiVectorBase, 1)) << "no config interrupt";
    EXPECT_TRUE(d.broken());
    EXPECT_EQ(r.dev->stats().needs_reset, 1u);
    EXPECT_EQ(img.read(0, 4096), std::vector<uint8_t>(4096, 0x11));
    // Further notifications are ignored while broken.
    d.notify(0);
    std::this_thread::sleep_for(10ms);
    EXPECT_EQ(d.used_idx(0), 0);

    // Reset and start again: the device works.
    ASSERT_TRUE(d.init_blk(true));
    EXPECT_FALSE(d.broken());
    EXPECT_EQ(d.blk(kTFlush, 0, {}).status, kSOk);
}

void flush_header(VirtioPciDriver& d, uint64_t buf)
{
    const uint32_t h[4] = {kTFlush, 0, 0, 0};
    d.machine().mem.write(buf, h, 16);
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, VirtioBlkHostile,
    ::testing::Values(
        HostileCase{"HeadOutOfRange", [](VirtioPciDriver& d, uint64_t) { d.publish(0, 16); }},
        HostileCase{"NextOutOfRange",
                    [](VirtioPciDriver& d, uint64_t b) {
                        flush_header(d, b);
                        d.write_desc(0, 0, b, 16, kDescFNext, 4000);
                        d.publish(0, 0);
                    }},
        HostileCase{"LoopingChain",
                    [](VirtioPciDriver& d, uint64_t b) {
                        flush_header(d, b);
                        d.write_desc(0, 0, b, 16, kDescFNext, 1);
                        d.write_desc(0, 1, b + 16, 1, kDescFNext | kDescFWrite, 0);
                        d.publish(0, 0);
                    }},
        HostileCase{"AvailIndexJump", [](VirtioPciDriver& d, uint64_t) { d.set_avail_idx(0, 1000); }},
        HostileCase{"IndirectBadLength",
                    [](VirtioPciDriver& d, uint64_t b) {
                        d.write_desc(0, 0, b, 20, kDescFIndirect, 0);
                        d.publish(0, 0);
                    }},
        HostileCase{"IndirectOutsideRam",
                    [](VirtioPciDriver& d, uint64_t) {
                        d.write_desc(0, 0, d.machine().mem.size() - 16, 64, kDescFIndirect, 0);
                        d.publish(0, 0);
                    }},
        HostileCase{"IndirectNested",
                    [](VirtioPciDriver& d, uint64_t b) {
                        const VirtqDesc inner[2] = {{b + 1024, 16, kDescFNext, 1}, {b + 2048, 32, kDescFIndirect, 0}};
                        d.machine().mem.write(b + 512, inner, sizeof(inner));
                        d.write_desc(0, 0, b + 512, sizeof(inner), kDescFIndirect, 0);
                        d.publish(0, 0);
                    }},
        HostileCase{"IndirectWithNext",
                    [](VirtioPciDriver& d, uint64_t b) {
                        const VirtqDesc inner{b, 16, 0, 0};
                        d.machine().mem.write(b + 512, &inner, sizeof(inner));
                        d.write_desc(0, 0, b + 512, 16, kDescFIndirect | kDescFNext, 1);
                        d.write_desc(0, 1, b + 16, 1, kDescFWrite, 0);
                        d.publish(0, 0);
                    }},
        HostileCase{"IndirectLoop",
                    [](VirtioPciDriver& d, uint64_t b) {
                        const VirtqDesc inner[2] = {{b, 16, kDescFNext, 1}, {b + 16, 1, kDescFNext | kDescFWrite, 0}};
                        d.machine().mem.write(b + 512, inner, sizeof(inner));
                        d.write_desc(0, 0, b + 512, sizeof(inner), kDescFIndirect, 0);
                        d.publish(0, 0);
                    }}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(VirtioBlkHostileSetup, QueueSizeNotAPowerOfTwo)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    auto& d = *r.drv;
    ASSERT_TRUE(d.negotiate(feature(kFVersion1)));
    d.enable_msix();
    d.set_config_vector(0);
    EXPECT_FALSE(d.setup_queue(0, 100, 1));   // queue_enable reads back 0
    EXPECT_TRUE(d.broken());
    EXPECT_TRUE(r.m.irqs.wait_msi_count(VirtioPciDriver::kMsiVectorBase, 1));
    ASSERT_TRUE(d.init_blk(true));            // a reset recovers
    EXPECT_EQ(d.blk(kTFlush, 0, {}).status, kSOk);
}

TEST(VirtioBlkHostileSetup, RingsOutsideRam)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""});
    auto& d = *r.drv;
    ASSERT_TRUE(d.negotiate(feature(kFVersion1)));
    d.common_write(common::kQueueSelect, 2, 0);
    d.common_write(common::kQueueSize, 2, 64);
    d.common_write(common::kQueueDesc, 8, 0x1'0000'0000ull);   // above 16 MiB of RAM
    d.common_write(common::kQueueDriver, 8, 0x200000);
    d.common_write(common::kQueueDevice, 8, 0x300000);
    d.common_write(common::kQueueEnable, 2, 1);
    EXPECT_EQ(d.common_read(common::kQueueEnable, 2), 0u);
    EXPECT_TRUE(d.broken());
    // MSI-X vector numbers the device cannot map read back as NO_VECTOR.
    d.common_write(common::kQueueMsixVector, 2, 7);
    EXPECT_EQ(d.common_read(common::kQueueMsixVector, 2), kNoVector);
}

TEST(VirtioBlkHostileSetup, LegacyQueueAddressOutsideRam)
{
    TempImage img(kImageBytes);
    BlkRig r(DiskOptions{img.path(), false, ""}, Mode::kLegacy);
    auto& d = *r.drv;
    d.set_status(0);
    d.set_status(kStatusAcknowledge | kStatusDriver);
    d.legacy_write(legacy::kQueueSelect, 2, 0);
    d.legacy_write(legacy::kQueueAddress, 4, 0x00ff'ffff);   // PFN far beyond RAM
    EXPECT_TRUE(d.broken());
    d.legacy_write(legacy::kQueueNotify, 2, 0);
    d.legacy_write(legacy::kQueueNotify, 2, 9);   // no such queue: ignored
    d.set_status(0);
    EXPECT_EQ(d.status(), 0);
}

}  // namespace
}  // namespace kvmini
