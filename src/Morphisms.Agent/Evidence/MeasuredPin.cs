using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// The KMS CA pin as the TEE measured it at launch, or the absence of one.
/// </summary>
/// <param name="Sha256">The pin (32 bytes), or null when the launch configuration carries none.</param>
/// <param name="Source">Where it was read (or looked for), for logs and errors.</param>
/// <param name="Simulated">True for the simulated TEE, whose "measurement" proves nothing about hardware.</param>
public sealed record MeasuredPin(byte[]? Sha256, string Source, bool Simulated = false)
{
    /// <summary>The length of the TDX MRCONFIGID field.</summary>
    public const int MrConfigIdLength = 48;

    /// <summary>
    /// SNP: HOST_DATA is 32 bytes the host fixes at launch (SNP_LAUNCH_FINISH) and the report covers, i.e. exactly
    /// one SHA-256. All zeros is what a host that set nothing leaves, so it means "no pin", never "pin zero".
    /// </summary>
    public static MeasuredPin FromSnpReport(ReadOnlySpan<byte> report, string source)
    {
        SnpReport parsed;
        try
        {
            parsed = SnpReport.Parse(report);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new EvidenceException($"{source}: the SNP report does not parse: {e.Message}", e);
        }

        var hostData = parsed.HostData.Span;
        return hostData.ContainsAnyExcept((byte)0)
            ? new MeasuredPin(hostData.ToArray(), $"{source} SNP HOST_DATA")
            : new MeasuredPin(null, $"{source} SNP HOST_DATA is all zeros");
    }

    /// <summary>
    /// TDX: MRCONFIGID is 48 bytes the host sets at TD creation and the TD report covers. Morphisms puts the 32-byte
    /// pin in bytes 0..31 and requires bytes 32..47 to be zero: anything else there means the field carries some other
    /// scheme's value (a 48-byte hash, say), and reading its prefix as a pin would trust an accident.
    /// </summary>
    public static MeasuredPin FromTdxQuote(ReadOnlySpan<byte> quote, string source)
    {
        TdReportBody body;
        try
        {
            body = DcapQuote.Parse(quote).TdBody ?? throw new InvalidDataException("not a TDX quote (no TD report body)");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new EvidenceException($"{source}: the TDX quote does not parse: {e.Message}", e);
        }

        var configId = body.MrConfigId.Span;
        if (!configId.ContainsAnyExcept((byte)0))
        {
            return new MeasuredPin(null, $"{source} TDX MRCONFIGID is all zeros");
        }

        if (configId.Length != MrConfigIdLength || configId[32..].ContainsAnyExcept((byte)0))
        {
            throw new EvidenceException(
                $"{source}: TDX MRCONFIGID {Convert.ToHexStringLower(configId)} is not a Morphisms KMS CA pin (32-byte SHA-256 followed by 16 zero bytes)");
        }

        return new MeasuredPin(configId[..32].ToArray(), $"{source} TDX MRCONFIGID");
    }

    /// <summary>Parses a pin written as hex (64 digits; colons allowed, as fingerprints are often printed).</summary>
    public static byte[]? ParseHex(string hex)
    {
        hex = hex.Trim().Replace(":", "", StringComparison.Ordinal);
        return hex.Length == 64 && hex.All(char.IsAsciiHexDigit) ? Convert.FromHexString(hex) : null;
    }
}

/// <summary>An evidence provider that can read the KMS CA pin from its TEE's measured launch configuration.</summary>
public interface IMeasuredPinSource
{
    /// <summary>
    /// Reads the measured pin before anything is sent to the KMS. Returns a <see cref="MeasuredPin"/> without a value
    /// when the launch configuration carries none; throws <see cref="EvidenceException"/> when the TEE cannot be read
    /// or the field holds something that is not a pin.
    /// </summary>
    Task<MeasuredPin> ReadKmsCaPinAsync(CancellationToken ct);
}
