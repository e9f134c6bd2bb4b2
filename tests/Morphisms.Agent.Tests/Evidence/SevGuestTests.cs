using System.Runtime.InteropServices;
using Morphisms.Agent.Evidence;

namespace Morphisms.Agent.Tests.Evidence;

/// <summary>
/// <c>/dev/sev-guest</c>: the uapi struct layouts and ioctl numbers, and the ioctl path against devices that are not
/// SNP guests. The path has not run on SNP hardware.
/// </summary>
public sealed class SevGuestTests
{
    [Fact]
    public void StructLayoutsMatchTheLinuxUapi()
    {
        Assert.Equal(32, Marshal.SizeOf<SevGuestAbi.GuestRequest>());
        Assert.Equal(8, (int)Marshal.OffsetOf<SevGuestAbi.GuestRequest>(nameof(SevGuestAbi.GuestRequest.ReqData)));
        Assert.Equal(16, (int)Marshal.OffsetOf<SevGuestAbi.GuestRequest>(nameof(SevGuestAbi.GuestRequest.RespData)));
        Assert.Equal(24, (int)Marshal.OffsetOf<SevGuestAbi.GuestRequest>(nameof(SevGuestAbi.GuestRequest.FwError)));
        Assert.Equal(28, (int)Marshal.OffsetOf<SevGuestAbi.GuestRequest>(nameof(SevGuestAbi.GuestRequest.VmmError)));
        Assert.Equal(96, Marshal.SizeOf<SevGuestAbi.ReportRequest>());
        Assert.Equal(64, (int)Marshal.OffsetOf<SevGuestAbi.ReportRequest>(nameof(SevGuestAbi.ReportRequest.Vmpl)));
        Assert.Equal(112, Marshal.SizeOf<SevGuestAbi.ExtReportRequest>());
        Assert.Equal(96, (int)Marshal.OffsetOf<SevGuestAbi.ExtReportRequest>(nameof(SevGuestAbi.ExtReportRequest.CertsAddress)));
        Assert.Equal(104, (int)Marshal.OffsetOf<SevGuestAbi.ExtReportRequest>(nameof(SevGuestAbi.ExtReportRequest.CertsLength)));
    }

    [Fact]
    public void IoctlNumbersMatchTheLinuxUapi()
    {
        // From <linux/sev-guest.h>: _IOWR('S', 0x0 / 0x2, struct snp_guest_request_ioctl).
        Assert.Equal(0xC0205300UL, SevGuestAbi.SnpGetReport);
        Assert.Equal(0xC0205302UL, SevGuestAbi.SnpGetExtReport);
    }

    [Fact]
    public unsafe void RequestCarriesUserDataAndVmpl()
    {
        var data = Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();
        var request = SevGuestAbi.Request(data, vmpl: 2);
        var bytes = new ReadOnlySpan<byte>(&request, sizeof(SevGuestAbi.ReportRequest));
        Assert.Equal(data, bytes[..64].ToArray());
        Assert.Equal(2u, BitConverter.ToUInt32(bytes[64..68]));
        Assert.True(bytes[68..].ToArray().All(b => b == 0));
    }

    [VectorFact]
    public void ResponseYieldsTheReport()
    {
        var report = TestVectors.Read("snp", "gosevguest_milan_v2_report.bin");
        var response = new byte[SevGuestAbi.ResponseSize];
        BitConverter.TryWriteBytes(response.AsSpan(4), (uint)report.Length);
        report.CopyTo(response, SevGuestAbi.ReportOffsetInResponse);
        Assert.Equal(report, SevGuestAbi.ReportFromResponse(response));

        BitConverter.TryWriteBytes(response.AsSpan(0), 0x16u);
        Assert.Contains("status 0x16", Assert.Throws<EvidenceException>(() => SevGuestAbi.ReportFromResponse(response)).Message);
    }

    [Fact]
    public async Task IoctlOnANonSnpDevice_FailsCleanly()
    {
        // /dev/null answers every ioctl with ENOTTY: the extended request fails, the plain one too, with errno.
        var e = await Assert.ThrowsAsync<EvidenceException>(() => new SevGuestEvidenceProvider("/dev/null").GetEvidenceAsync(new byte[64], default));
        Assert.Contains("SNP_GET_REPORT failed", e.Message);
    }

    [Fact]
    public async Task MissingDevice_FailsCleanly()
    {
        var e = await Assert.ThrowsAsync<EvidenceException>(() => new SevGuestEvidenceProvider("/nonexistent/sev-guest").GetEvidenceAsync(new byte[64], default));
        Assert.Contains("cannot open", e.Message);
    }

    [VectorFact]
    public void CertTable_RoundTripsAndPrefersTheVcek()
    {
        var vcek = TestVectors.Read("snp", "gosevguest_milan_vcek.der");
        var table = SnpCertTable.Build([(SnpCertTable.Ask, [1, 2]), (SnpCertTable.Vcek, vcek)]);
        Assert.Equal(vcek, SnpCertTable.SigningKeyCertificate(table));
        Assert.Null(SnpCertTable.SigningKeyCertificate([]));
    }

    [Fact]
    public void CertTable_RejectsEntriesOutsideTheTableAndMissingTerminator()
    {
        var table = SnpCertTable.Build([(SnpCertTable.Vcek, [1, 2, 3])]);
        BitConverter.TryWriteBytes(table.AsSpan(20), 10_000u);
        Assert.Throws<InvalidDataException>(() => SnpCertTable.Parse(table));
        Assert.Throws<InvalidDataException>(() => SnpCertTable.Parse(Enumerable.Repeat((byte)0xFF, 30).ToArray()));
    }
}
