using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// Linux configfs-tsm (<c>/sys/kernel/config/tsm/report</c>) for SEV-SNP (<c>sev_guest</c>) and TDX (<c>tdx_guest</c>):
/// make a report entry, write <c>inblob</c>, read <c>outblob</c> (and SNP's <c>auxblob</c> certificate table). The
/// kernel bumps <c>generation</c> on every write; if it changed between our write and our read, another process
/// wrote the same entry and the outblob may be theirs, so the evidence is rejected. The measured KMS CA pin is SNP
/// HOST_DATA of a report of this interface (the PSP's, over the kernel's encrypted channel), but TDX MRCONFIGID of the
/// TD's own report (<see cref="TdxMrConfigId"/>): a TDX outblob is the host's quoting service's answer, unverified.
/// </summary>
public sealed class ConfigFsTsmEvidenceProvider(string root, string expectedProvider) : IEvidenceProvider, IMeasuredPinSource
{
    /// <summary>The provider name for SEV-SNP guests.</summary>
    public const string SevGuest = "sev_guest";

    /// <summary>The provider name for TDX guests.</summary>
    public const string TdxGuest = "tdx_guest";

    /// <inheritdoc />
    public string Name => "configfs-tsm";

    /// <summary>The report entry name; a fresh one per provider keeps concurrent agents apart.</summary>
    public string EntryName { get; init; } = $"morph-init-{Environment.ProcessId}-{Guid.NewGuid():N}";

    /// <summary>Remove the entry afterwards (the kernel frees its memory on rmdir).</summary>
    public bool RemoveEntry { get; init; } = true;

    /// <summary>
    /// Where a TDX guest reads MRCONFIGID for the pin; by default the kernel's sysfs measurement, else <c>/dev/tdx_guest</c>.
    /// </summary>
    public TdxMrConfigIdReader TdxMrConfigId { get; init; } =
        new(TdxMrConfigIdReader.DefaultMeasurementFile, new TdxGuestDevice(TdxGuestDevice.DefaultPath));

    /// <summary>True when configfs-tsm is mounted at <paramref name="root"/>.</summary>
    public static bool IsPresent(string root) => Directory.Exists(root);

    /// <inheritdoc />
    public async Task<TeeEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken ct)
    {
        ReportDataCheck.RequireLength(reportData);
        var (outblob, auxblob) = await ReportAsync(reportData, ct).ConfigureAwait(false);
        return expectedProvider == SevGuest ? Snp(outblob, auxblob, reportData) : Tdx(outblob, reportData);
    }

    /// <inheritdoc />
    public async Task<MeasuredPin> ReadKmsCaPinAsync(CancellationToken ct)
    {
        if (expectedProvider != SevGuest)
        {
            // Not from a quote: the host's quoting service makes it from our TDREPORT and the kernel returns whatever it
            // answers, so its MRCONFIGID (the pin, or the initdata digest) would be the host's choice. The TD's own
            // report comes from the TDX module inside the guest, and costs no round trip to the host either.
            var (configId, source) = TdxMrConfigId.Read();
            return MeasuredPin.FromTdxMrConfigId(configId, source);
        }

        // HOST_DATA is fixed for the life of the guest, so any report of ours carries it: the report data is irrelevant
        // here (zeros), and a report answering someone else's request would carry the same value. The report comes
        // from the PSP over the kernel's VMPCK-encrypted channel, which the host cannot forge.
        var (outblob, _) = await ReportAsync(new byte[64], ct).ConfigureAwait(false);
        return MeasuredPin.FromSnpReport(outblob, "configfs-tsm");
    }

    private async Task<(byte[] Outblob, byte[] Auxblob)> ReportAsync(ReadOnlyMemory<byte> reportData, CancellationToken ct)
    {
        var entry = Path.Combine(root, EntryName);
        Directory.CreateDirectory(entry);
        try
        {
            var provider = (await ReadTextAsync(entry, "provider", ct).ConfigureAwait(false)).Trim();
            if (provider != expectedProvider)
            {
                throw new EvidenceException($"configfs-tsm: provider is '{provider}', expected '{expectedProvider}'");
            }

            await File.WriteAllBytesAsync(Path.Combine(entry, "inblob"), reportData.ToArray(), ct).ConfigureAwait(false);
            var generation = await ReadTextAsync(entry, "generation", ct).ConfigureAwait(false);
            var outblob = await File.ReadAllBytesAsync(Path.Combine(entry, "outblob"), ct).ConfigureAwait(false);
            var auxPath = Path.Combine(entry, "auxblob");
            var auxblob = expectedProvider == SevGuest && File.Exists(auxPath) ? await File.ReadAllBytesAsync(auxPath, ct).ConfigureAwait(false) : [];
            var after = await ReadTextAsync(entry, "generation", ct).ConfigureAwait(false);
            if (after.Trim() != generation.Trim())
            {
                throw new EvidenceException($"configfs-tsm: generation changed from {generation.Trim()} to {after.Trim()} while reading: another writer used entry {EntryName}");
            }

            return (outblob, auxblob);
        }
        finally
        {
            if (RemoveEntry)
            {
                TryRemove(entry);
            }
        }
    }

    private static TeeEvidence Snp(byte[] outblob, byte[] auxblob, ReadOnlyMemory<byte> reportData)
    {
        SnpReport report;
        try
        {
            report = SnpReport.Parse(outblob);
        }
        catch (Exception e)
        {
            throw new EvidenceException($"configfs-tsm: the SNP report does not parse: {e.Message}", e);
        }

        ReportDataCheck.RequireMatch(report.ReportData.Span, reportData, "configfs-tsm");
        return new TeeEvidence("snp", outblob, SnpCertTable.SigningKeyCertificate(auxblob));
    }

    private static TeeEvidence Tdx(byte[] outblob, ReadOnlyMemory<byte> reportData)
    {
        DcapQuote quote;
        try
        {
            quote = DcapQuote.Parse(outblob);
        }
        catch (Exception e)
        {
            throw new EvidenceException($"configfs-tsm: the TDX quote does not parse: {e.Message}", e);
        }

        if (quote.TdBody is null)
        {
            throw new EvidenceException("configfs-tsm: tdx_guest returned a quote without a TD report body");
        }

        ReportDataCheck.RequireMatch(quote.ReportData.Span, reportData, "configfs-tsm");
        return new TeeEvidence("tdx", outblob, null);
    }

    private static async Task<string> ReadTextAsync(string entry, string name, CancellationToken ct)
    {
        try
        {
            return await File.ReadAllTextAsync(Path.Combine(entry, name), ct).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw new EvidenceException($"configfs-tsm: cannot read {name}: {e.Message}", e);
        }
    }

    private static void TryRemove(string entry)
    {
        try
        {
            // On configfs the attribute files vanish with the directory; on a plain directory (tests) they must go first.
            Directory.Delete(entry, recursive: !IsConfigFs(entry));
        }
        catch (IOException)
        {
            // Leaving an entry behind costs a little kernel memory, nothing else.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static bool IsConfigFs(string path) => path.StartsWith("/sys/kernel/config/", StringComparison.Ordinal);
}
