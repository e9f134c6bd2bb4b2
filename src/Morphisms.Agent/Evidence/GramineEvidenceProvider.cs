using Morphisms.Attestation.Abi.Dcap;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// Gramine's <c>/dev/attestation</c>: write the 64-byte <c>user_report_data</c>, read the DCAP <c>quote</c>.
/// The files are process-local inside the enclave, so there is no cross-process race to guard against.
/// The measured KMS CA pin is the manifest constant <c>loader.env.MORPH_KMS_CA_SHA256 = "HEX"</c>: manifest values
/// are measured into MRENCLAVE and Gramine hands <c>loader.env</c> entries to the app as environment variables.
/// </summary>
/// <param name="root">The attestation pseudo-filesystem (<c>/dev/attestation</c>).</param>
/// <param name="environment">Reads an environment variable (tests substitute their own).</param>
public sealed class GramineEvidenceProvider(string root, Func<string, string?>? environment = null) : IEvidenceProvider, IMeasuredPinSource
{
    /// <summary>The environment variable the manifest sets to the pin.</summary>
    public const string PinVariable = "MORPH_KMS_CA_SHA256";

    /// <inheritdoc />
    public string Name => "gramine";

    /// <inheritdoc />
    /// <remarks>
    /// The agent cannot tell a manifest constant from <c>loader.env.MORPH_KMS_CA_SHA256 = { passthrough = true }</c>
    /// (the host's value, unmeasured): both arrive as the same variable, and the enclave does not see its manifest.
    /// The deployment must write the constant; that is a documented requirement on whoever generates the manifest.
    /// </remarks>
    public Task<MeasuredPin> ReadKmsCaPinAsync(CancellationToken ct)
    {
        var value = (environment ?? Environment.GetEnvironmentVariable)(PinVariable);
        if (string.IsNullOrWhiteSpace(value))
        {
            return Task.FromResult(new MeasuredPin(null, $"gramine manifest sets no loader.env.{PinVariable}"));
        }

        // A malformed measured value is a broken build, not an absent pin: falling back to the command line would hide it.
        var pin = MeasuredPin.ParseHex(value)
            ?? throw new EvidenceException($"gramine: {PinVariable} from the manifest must be 64 hex digits (SHA-256 of the KMS root CA DER)");
        return Task.FromResult(new MeasuredPin(pin, $"gramine manifest loader.env.{PinVariable}"));
    }

    /// <summary>True when <paramref name="root"/> looks like Gramine's attestation interface.</summary>
    public static bool IsPresent(string root) => File.Exists(Path.Combine(root, "attestation_type"));

    /// <inheritdoc />
    public async Task<TeeEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken ct)
    {
        ReportDataCheck.RequireLength(reportData);
        string type;
        try
        {
            type = (await File.ReadAllTextAsync(Path.Combine(root, "attestation_type"), ct).ConfigureAwait(false)).Trim();
        }
        catch (IOException e)
        {
            throw new EvidenceException($"gramine: cannot read {root}/attestation_type: {e.Message}", e);
        }

        // EPID and "none" cannot be verified against DCAP collateral; refusing here gives the operator the real cause.
        if (type != "dcap")
        {
            throw new EvidenceException($"gramine: attestation_type is '{type}', expected 'dcap' (set sgx.remote_attestation = \"dcap\" in the manifest)");
        }

        await File.WriteAllBytesAsync(Path.Combine(root, "user_report_data"), reportData.ToArray(), ct).ConfigureAwait(false);
        var quote = await File.ReadAllBytesAsync(Path.Combine(root, "quote"), ct).ConfigureAwait(false);
        DcapQuote parsed;
        try
        {
            parsed = DcapQuote.Parse(quote);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new EvidenceException($"gramine: the quote does not parse: {e.Message}", e);
        }

        ReportDataCheck.RequireMatch(parsed.ReportData.Span, reportData, "gramine");
        return new TeeEvidence("sgx", quote, null);
    }
}
