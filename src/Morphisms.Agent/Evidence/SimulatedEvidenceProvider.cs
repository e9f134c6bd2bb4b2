using System.Text.Json.Nodes;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// The installation's simulated TEE: real SNP-report or SGX-quote formats signed under the simulated root, with a
/// measurement that is a real hash of the function bundle and its launch configuration. Its measured KMS CA pin is
/// <c>kms_ca_sha256</c> in the launch configuration, else the HOST_DATA its SNP reports carry (set by the simulated
/// "host" with <c>--sim-host-data</c>), so the SNP pin path can be exercised without hardware.
/// </summary>
/// <param name="authority">The simulated TEE.</param>
/// <param name="measurement">The measurement reported.</param>
/// <param name="format"><c>snp</c> or <c>sgx</c>.</param>
/// <param name="hostData">SNP HOST_DATA (32 bytes; zeros when null).</param>
/// <param name="launchConfig">The measured launch configuration (JSON, may carry <c>kms_ca_sha256</c>).</param>
public sealed class SimulatedEvidenceProvider(
    SimulatedTeeAuthority authority, byte[] measurement, string format, byte[]? hostData = null, byte[]? launchConfig = null) : IEvidenceProvider, IMeasuredPinSource
{
    private readonly byte[] _hostData = hostData ?? new byte[32];

    /// <summary>Measures <paramref name="bundleDirectory"/> with <paramref name="launchConfig"/> for <paramref name="format"/>.</summary>
    public static SimulatedEvidenceProvider Measure(SimulatedTeeAuthority authority, string bundleDirectory, byte[] launchConfig, string format, byte[]? hostData = null) =>
        new(authority, format == "sgx" ? SimulatedMeasurement.ForSgx(bundleDirectory, launchConfig) : SimulatedMeasurement.ForSnp(bundleDirectory, launchConfig), format, hostData, launchConfig);

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
            : authority.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = reportData.ToArray(), Measurement = measurement, HostData = _hostData });

        // No endorsements: a KMS that trusts this simulated TEE supplies its VCEK and collateral itself.
        return Task.FromResult(new TeeEvidence(format == "sgx" ? "sgx" : "snp", evidence, null, Simulated: true));
    }

    /// <inheritdoc />
    public async Task<MeasuredPin> ReadKmsCaPinAsync(CancellationToken ct)
    {
        var fromConfig = LaunchConfigPin(launchConfig ?? []);

        // Read HOST_DATA back out of a report, as the SNP providers do, rather than trusting the field we were given.
        var fromHostData = format == "sgx"
            ? new MeasuredPin(null, "simulated SGX (no HOST_DATA)")
            : MeasuredPin.FromSnpReport((await GetEvidenceAsync(new byte[64], ct).ConfigureAwait(false)).Evidence, "simulated");
        if (fromConfig is not null && fromHostData.Sha256 is { } hostPin && !hostPin.AsSpan().SequenceEqual(fromConfig))
        {
            throw new AgentException(AgentExitCodes.Usage, "the simulated launch configuration's kms_ca_sha256 differs from the simulated HOST_DATA");
        }

        return fromConfig is not null
            ? new MeasuredPin(fromConfig, "simulated launch configuration kms_ca_sha256", Simulated: true)
            : fromHostData with { Simulated = true };
    }

    /// <summary>The <c>kms_ca_sha256</c> of a launch configuration, or null when it has none.</summary>
    public static byte[]? LaunchConfigPin(byte[] launchConfig)
    {
        if (launchConfig.Length == 0)
        {
            return null;
        }

        string? hex;
        try
        {
            // Duplicates refused while parsing: the lazily built object would throw ArgumentException at the lookup.
            hex = JsonNode.Parse(launchConfig, documentOptions: new System.Text.Json.JsonDocumentOptions { AllowDuplicateProperties = false })?["kms_ca_sha256"]?.GetValue<string>();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            throw new AgentException(AgentExitCodes.Usage, $"the launch configuration is not JSON with a string kms_ca_sha256: {e.Message}");
        }

        return hex is null
            ? null
            : MeasuredPin.ParseHex(hex) ?? throw new AgentException(AgentExitCodes.Usage, "launch configuration kms_ca_sha256 must be 64 hex digits (SHA-256)");
    }
}
