using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>The real SEV-SNP vectors, with the signer each one needs and a time at which its chain is valid.</summary>
internal static class SnpVectors
{
    /// <summary>The day the vectors were gathered; every VCEK is valid then, the AWS VLEK is not.</summary>
    public static readonly DateTimeOffset Gathered = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Inside the AWS VLEK's validity (2024-12-10..2025-12-10).</summary>
    public static readonly DateTimeOffset VlekValid = new(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Every real report: name, report file, endorsement file, evaluation time, product.</summary>
    public static readonly (string Name, string Report, string Endorsement, DateTimeOffset Time, string Product)[] Reports =
    [
        ("gosevguest_milan_v2", "gosevguest_milan_v2_report.bin", "gosevguest_milan_vcek.der", Gathered, "Milan"),
        ("trustee_milan_v2", "trustee_milan_v2_report.bin", "trustee_milan_vcek.der", Gathered, "Milan"),
        ("trustee_milan_vlek_v3", "trustee_milan_vlek_v3_report.bin", "trustee_milan_vlek.der", VlekValid, "Milan"),
        ("trustee_genoa_v3", "trustee_genoa_v3_report_from_json.bin", "trustee_genoa_vcek.der", Gathered, "Genoa"),
        ("trustee_azure_milan_v2", "trustee_azure_milan_v2_report.bin", "trustee_azure_milan_vcek_chain.pem", Gathered, "Milan"),
        ("trustee_azure_genoa_v3", "trustee_azure_genoa_v3_report.bin", "trustee_azure_genoa_vcek.pem", Gathered, "Genoa"),
    ];

    public static IEnumerable<object[]> ReportNames => Reports.Select(r => new object[] { r.Name });

    public static (string Name, string Report, string Endorsement, DateTimeOffset Time, string Product) Get(string name) =>
        Reports.Single(r => r.Name == name);

    public static byte[] Report(string name) => TestVectors.Read("snp", Get(name).Report);

    public static SnpEndorsements Endorsements(string name) => SnpEndorsements.LoadFiles(TestVectors.Path("snp", Get(name).Endorsement));

    public static SnpVerifyOptions OptionsAt(DateTimeOffset time) => new() { Time = new FakeTimeProvider(time) };

    public static SnpVerifyOptions Options(string name) => OptionsAt(Get(name).Time);

    public static byte[] Root(string file) => TestVectors.Read("roots", file);
}
