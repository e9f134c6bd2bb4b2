using Morphisms.Agent.Evidence;
using Morphisms.Attestation.Abi.Dcap;

namespace Morphisms.Agent.Tests.Evidence;

/// <summary>The Gramine provider on a fake <c>/dev/attestation</c> holding a real captured SGX quote.</summary>
public sealed class GramineEvidenceProviderTests
{
    private static (FakeDeviceTree Tree, byte[] Quote, byte[] ReportData) Device(string type = "dcap")
    {
        var quote = TestVectors.Read("sgx", "dcaprs_icelake_00606a000000_v3_quote.bin");
        var tree = new FakeDeviceTree();
        tree.Write("attestation_type", type + "\n");
        tree.Write("quote", quote);
        return (tree, quote, DcapQuote.Parse(quote).ReportData.ToArray());
    }

    [VectorFact]
    public async Task WritesUserReportData_ReturnsTheQuote()
    {
        var (tree, quote, reportData) = Device();
        using var _ = tree;
        var evidence = await new GramineEvidenceProvider(tree.Root).GetEvidenceAsync(reportData, default);

        Assert.Equal("sgx", evidence.Tee);
        Assert.Equal(quote, evidence.Evidence);
        Assert.Equal(reportData, File.ReadAllBytes(Path.Combine(tree.Root, "user_report_data")));
    }

    [VectorFact]
    public async Task RejectsNonDcapAttestation()
    {
        var (tree, _, reportData) = Device("epid");
        using var _ = tree;
        var e = await Assert.ThrowsAsync<EvidenceException>(() => new GramineEvidenceProvider(tree.Root).GetEvidenceAsync(reportData, default));
        Assert.Contains("expected 'dcap'", e.Message);
    }

    [VectorFact]
    public async Task RejectsAQuoteForOtherReportData()
    {
        var (tree, _, _) = Device();
        using var _ = tree;
        var e = await Assert.ThrowsAsync<EvidenceException>(() => new GramineEvidenceProvider(tree.Root).GetEvidenceAsync(Enumerable.Repeat((byte)0x5A, 64).ToArray(), default));
        Assert.Contains("different report data", e.Message);
    }

    [Fact]
    public async Task RejectsReportDataOfTheWrongSize()
    {
        using var tree = new FakeDeviceTree();
        await Assert.ThrowsAsync<ArgumentException>(() => new GramineEvidenceProvider(tree.Root).GetEvidenceAsync(new byte[32], default));
    }
}
