using Morphisms.Agent.Evidence;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Agent.Tests.Evidence;

/// <summary>configfs-tsm on a fake report tree holding real SNP reports and TDX quotes.</summary>
public sealed class ConfigFsTsmEvidenceProviderTests
{
    private const string Entry = "entry0";

    private static ConfigFsTsmEvidenceProvider Provider(FakeDeviceTree tree, string provider) =>
        new(tree.Root, provider) { EntryName = Entry, RemoveEntry = false };

    [VectorFact]
    public async Task Snp_WritesInblob_ReturnsReportAndVcekFromAuxblob()
    {
        var report = TestVectors.Read("snp", "gosevguest_milan_v2_report.bin");
        var vcek = TestVectors.Read("snp", "gosevguest_milan_vcek.der");
        var reportData = SnpReport.Parse(report).ReportData.ToArray();
        using var tree = new FakeDeviceTree();
        tree.Write($"{Entry}/provider", "sev_guest\n");
        tree.Write($"{Entry}/generation", "1\n");
        tree.Write($"{Entry}/outblob", report);
        tree.Write($"{Entry}/auxblob", SnpCertTable.Build([(SnpCertTable.Ark, [0xAA]), (SnpCertTable.Vcek, vcek)]));

        var evidence = await Provider(tree, ConfigFsTsmEvidenceProvider.SevGuest).GetEvidenceAsync(reportData, default);

        Assert.Equal("snp", evidence.Tee);
        Assert.Equal(report, evidence.Evidence);
        Assert.Equal(vcek, evidence.Endorsements);
        Assert.Equal(reportData, File.ReadAllBytes(Path.Combine(tree.Root, Entry, "inblob")));
    }

    [VectorFact]
    public async Task Snp_AMalformedCertificateTableFromTheHost_IsAnEvidenceError()
    {
        var report = TestVectors.Read("snp", "gosevguest_milan_v2_report.bin");
        var reportData = SnpReport.Parse(report).ReportData.ToArray();
        using var tree = new FakeDeviceTree();
        tree.Write($"{Entry}/provider", "sev_guest\n");
        tree.Write($"{Entry}/generation", "1\n");
        tree.Write($"{Entry}/outblob", report);
        tree.Write($"{Entry}/auxblob", Enumerable.Repeat((byte)0xFF, 30).ToArray());

        var e = await Assert.ThrowsAsync<EvidenceException>(() => Provider(tree, ConfigFsTsmEvidenceProvider.SevGuest).GetEvidenceAsync(reportData, default));
        Assert.Contains("certificate table is malformed", e.Message);
    }

    [VectorFact]
    public async Task Tdx_ReturnsTheQuote()
    {
        var quote = TestVectors.Read("tdx", "trustee_emr_90c06f000000_v5_quote.bin");
        var reportData = DcapQuote.Parse(quote).ReportData.ToArray();
        using var tree = new FakeDeviceTree();
        tree.Write($"{Entry}/provider", "tdx_guest\n");
        tree.Write($"{Entry}/generation", "7\n");
        tree.Write($"{Entry}/outblob", quote);

        var evidence = await Provider(tree, ConfigFsTsmEvidenceProvider.TdxGuest).GetEvidenceAsync(reportData, default);

        Assert.Equal("tdx", evidence.Tee);
        Assert.Equal(quote, evidence.Evidence);
        Assert.Null(evidence.Endorsements);
        Assert.Equal(reportData, File.ReadAllBytes(Path.Combine(tree.Root, Entry, "inblob")));
    }

    [VectorFact]
    public async Task RejectsTheWrongProvider()
    {
        using var tree = new FakeDeviceTree();
        tree.Write($"{Entry}/provider", "tdx_guest\n");
        var e = await Assert.ThrowsAsync<EvidenceException>(() => Provider(tree, ConfigFsTsmEvidenceProvider.SevGuest).GetEvidenceAsync(new byte[64], default));
        Assert.Contains("expected 'sev_guest'", e.Message);
    }

    [VectorFact]
    public async Task RejectsAGenerationChangeBetweenWriteAndRead()
    {
        var report = TestVectors.Read("snp", "gosevguest_milan_v2_report.bin");
        var reportData = SnpReport.Parse(report).ReportData.ToArray();
        using var tree = new FakeDeviceTree();
        tree.Write($"{Entry}/provider", "sev_guest\n");
        var generation = tree.Write($"{Entry}/generation", "1\n");
        var outblob = tree.Fifo($"{Entry}/outblob");

        // The "concurrent writer" strikes while the provider waits on outblob: it bumps the generation first.
        var writer = Task.Run(async () =>
        {
            await using var pipe = new FileStream(outblob, FileMode.Open, FileAccess.Write);
            await File.WriteAllTextAsync(generation, "2\n");
            await pipe.WriteAsync(report);
        });

        var e = await Assert.ThrowsAsync<EvidenceException>(() => Provider(tree, ConfigFsTsmEvidenceProvider.SevGuest).GetEvidenceAsync(reportData, default));
        await writer;
        Assert.Contains("generation changed from 1 to 2", e.Message);
    }

    [Fact]
    public async Task RemovesItsEntryAfterwards()
    {
        using var tree = new FakeDeviceTree();
        var provider = new ConfigFsTsmEvidenceProvider(tree.Root, ConfigFsTsmEvidenceProvider.SevGuest);

        // A plain directory has no provider attribute: the failure must still clean up the entry it made.
        await Assert.ThrowsAsync<EvidenceException>(() => provider.GetEvidenceAsync(new byte[64], default));
        Assert.Empty(Directory.EnumerateFileSystemEntries(tree.Root));
    }
}
