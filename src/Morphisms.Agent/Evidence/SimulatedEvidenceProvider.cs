using Morphisms.Attestation.Simulated;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// The installation's simulated TEE: real SNP-report or SGX-quote formats signed under the simulated root, with a
/// measurement that is a real hash of the function bundle and its launch configuration.
/// </summary>
public sealed class SimulatedEvidenceProvider(SimulatedTeeAuthority authority, byte[] measurement, string format) : IEvidenceProvider
{
    /// <summary>Measures <paramref name="bundleDirectory"/> with <paramref name="launchConfig"/> for <paramref name="format"/>.</summary>
    public static SimulatedEvidenceProvider Measure(SimulatedTeeAuthority authority, string bundleDirectory, byte[] launchConfig, string format) =>
        new(authority, format == "sgx" ? SimulatedMeasurement.ForSgx(bundleDirectory, launchConfig) : SimulatedMeasurement.ForSnp(bundleDirectory, launchConfig), format);

    /// <inheritdoc />
    public string Name => "sim";

    /// <summary>The measurement reported.</summary>
    public byte[] Measurement => measurement.ToArray();

    /// <inheritdoc />
    public Task<TeeEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken ct)
    {
        ReportDataCheck.RequireLength(reportData);
        var evidence = format == "sgx"
            ? authority.CreateSgxQuote(new SimulatedSgxQuoteRequest { ReportData = reportData.ToArray(), MrEnclave = measurement })
            : authority.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = reportData.ToArray(), Measurement = measurement });

        // No endorsements: a KMS that trusts this simulated TEE supplies its VCEK and collateral itself.
        return Task.FromResult(new TeeEvidence(format == "sgx" ? "sgx" : "snp", evidence, null, Simulated: true));
    }
}
