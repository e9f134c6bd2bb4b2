using Morphisms.Attestation.Abi.Dcap;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// Gramine's <c>/dev/attestation</c>: write the 64-byte <c>user_report_data</c>, read the DCAP <c>quote</c>.
/// The files are process-local inside the enclave, so there is no cross-process race to guard against.
/// </summary>
public sealed class GramineEvidenceProvider(string root) : IEvidenceProvider
{
    /// <inheritdoc />
    public string Name => "gramine";

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
