using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Morphisms.Agent.Evidence;

namespace Morphisms.Agent.Tests.Evidence;

/// <summary>
/// The TD's own report as the source of MRCONFIGID: the <c>tdx-guest.h</c> struct and ioctl number, TDREPORT parsing on
/// a constructed 1024-byte report, and <see cref="TdxMrConfigIdReader"/> (sysfs first, then the device, never the
/// quote). The ioctl path has not run on TDX hardware.
/// </summary>
public sealed class TdxGuestTests
{
    /// <summary>
    /// A TDREPORT_STRUCT as the TDX module lays it out: REPORTTYPE 0x81, <paramref name="reportData"/> at 128, and in
    /// TDINFO at 512 distinct bytes in MRTD (before MRCONFIGID) and MROWNER (after), so an offset off by a field shows.
    /// </summary>
    public static byte[] TdReport(byte[] mrConfigId, byte[] reportData)
    {
        var report = RandomNumberGenerator.GetBytes(1024);
        report[0] = 0x81;
        reportData.CopyTo(report, 128);
        Array.Fill(report, (byte)0xA1, 512 + 16, 48);
        mrConfigId.CopyTo(report, 576);
        Array.Fill(report, (byte)0xB2, 576 + 48, 48);
        return report;
    }

    /// <summary>A stand-in for <c>/dev/tdx_guest</c> whose TD was created with <paramref name="mrConfigId"/>.</summary>
    public sealed class FakeTdReport(byte[]? mrConfigId, bool present = true) : ITdReportSource
    {
        /// <summary>How many reports were asked for.</summary>
        public int Calls { get; private set; }

        /// <inheritdoc />
        public string Name => "fake-tdx-guest";

        /// <inheritdoc />
        public bool IsPresent => present;

        /// <inheritdoc />
        public byte[] GetReport(ReadOnlySpan<byte> reportData)
        {
            Calls++;
            return TdReport(mrConfigId ?? new byte[48], reportData.ToArray());
        }
    }

    /// <summary>A reader with no sysfs file whose device is a <see cref="FakeTdReport"/>.</summary>
    public static TdxMrConfigIdReader Reader(byte[]? mrConfigId) => new("/nonexistent/mrconfigid", new FakeTdReport(mrConfigId));

    [Fact]
    public void StructLayoutMatchesTheLinuxUapi()
    {
        Assert.Equal(1088, Marshal.SizeOf<TdxGuestAbi.ReportRequest>());
        Assert.Equal(64, (int)Marshal.OffsetOf<TdxGuestAbi.ReportRequest>(nameof(TdxGuestAbi.ReportRequest.TdReport)));
    }

    [Fact]
    public void IoctlNumberMatchesTheLinuxUapi()
    {
        // From <linux/tdx-guest.h>: _IOWR('T', 1, struct tdx_report_req), 1088 bytes.
        Assert.Equal(0xC4405401UL, TdxGuestAbi.GetReport0);
    }

    [Fact]
    public unsafe void RequestCarriesTheReportDataAndAnEmptyReport()
    {
        var data = Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();
        var request = TdxGuestAbi.Request(data);
        var bytes = new ReadOnlySpan<byte>(&request, sizeof(TdxGuestAbi.ReportRequest));
        Assert.Equal(data, bytes[..64].ToArray());
        Assert.False(bytes[64..].ContainsAnyExcept((byte)0));
        Assert.Equal(new byte[1024], TdxGuestAbi.Report(ref request));
        Assert.Throws<ArgumentException>(() => TdxGuestAbi.Request(new byte[32]));
    }

    [Fact]
    public void MrConfigIdIsReadAtOffset576OfAConstructedReport()
    {
        var reportData = RandomNumberGenerator.GetBytes(64);
        var configId = RandomNumberGenerator.GetBytes(48);
        Assert.Equal(configId, TdxGuestAbi.MrConfigId(TdReport(configId, reportData), reportData, "test"));
    }

    [Fact]
    public void AnythingButATdReportForThisRequest_IsRefused()
    {
        var reportData = RandomNumberGenerator.GetBytes(64);
        var report = TdReport(RandomNumberGenerator.GetBytes(48), reportData);

        Assert.Contains("1024 bytes", Assert.Throws<EvidenceException>(() => TdxGuestAbi.MrConfigId(report.AsSpan(0, 1000), reportData, "test")).Message);

        // A buffer the kernel never filled is all zeros: REPORTTYPE 0, not a TD's.
        Assert.Contains("not a TD report", Assert.Throws<EvidenceException>(() => TdxGuestAbi.MrConfigId(new byte[1024], reportData, "test")).Message);
        var sgx = report.ToArray();
        sgx[0] = 0x00;
        Assert.Contains("REPORTTYPE.TYPE 0x00", Assert.Throws<EvidenceException>(() => TdxGuestAbi.MrConfigId(sgx, reportData, "test")).Message);

        Assert.Contains("REPORTDATA is not the one requested",
            Assert.Throws<EvidenceException>(() => TdxGuestAbi.MrConfigId(report, RandomNumberGenerator.GetBytes(64), "test")).Message);
    }

    [Fact]
    public void Reader_UsesTheDeviceWhenThereIsNoSysfsFile()
    {
        var configId = RandomNumberGenerator.GetBytes(48);
        var device = new FakeTdReport(configId);

        var (value, source) = new TdxMrConfigIdReader("/nonexistent/mrconfigid", device).Read();

        Assert.Equal(configId, value);
        Assert.Equal("TD report (fake-tdx-guest)", source);
        Assert.Equal(1, device.Calls);
    }

    [Fact]
    public void Reader_PrefersTheSysfsMeasurement_48RawBytes()
    {
        var configId = RandomNumberGenerator.GetBytes(48);
        using var tree = new FakeDeviceTree();
        var file = tree.Write("measurements/mrconfigid", configId);
        var device = new FakeTdReport(RandomNumberGenerator.GetBytes(48));

        var (value, source) = new TdxMrConfigIdReader(file, device).Read();

        Assert.Equal(configId, value);
        Assert.Contains(file, source);
        Assert.Equal(0, device.Calls);

        // Hex, or a value with a newline, is not the kernel's binary attribute: refused rather than taken apart.
        tree.Write("measurements/mrconfigid", Convert.ToHexStringLower(configId) + "\n");
        Assert.Contains("expected the 48", Assert.Throws<EvidenceException>(() => new TdxMrConfigIdReader(file, device).Read()).Message);
    }

    [Fact]
    public void Reader_WithNeitherInterface_RefusesAndSaysTheQuoteIsNotUsed()
    {
        var e = Assert.Throws<EvidenceException>(() => new TdxMrConfigIdReader("/nonexistent/mrconfigid", new FakeTdReport(null, present: false)).Read());
        Assert.Contains("neither /nonexistent/mrconfigid nor fake-tdx-guest exists", e.Message);
        Assert.Contains("could rewrite MRCONFIGID", e.Message);
    }

    [Fact]
    public void IoctlOnANonTdxDevice_FailsCleanly()
    {
        // /dev/null answers every ioctl with ENOTTY (25).
        var e = Assert.Throws<EvidenceException>(() => new TdxGuestDevice("/dev/null").GetReport(new byte[64]));
        Assert.Contains("TDX_CMD_GET_REPORT0 failed: errno 25", e.Message);
        Assert.True(new TdxGuestDevice("/dev/null").IsPresent);
    }

    [Fact]
    public void MissingDevice_FailsCleanly()
    {
        var device = new TdxGuestDevice("/nonexistent/tdx_guest");
        Assert.False(device.IsPresent);
        Assert.Contains("cannot open", Assert.Throws<EvidenceException>(() => device.GetReport(new byte[64])).Message);
    }
}
