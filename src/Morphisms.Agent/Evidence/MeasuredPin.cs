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
    /// <summary>
    /// The launch field the pin was looked for in, verbatim (SNP HOST_DATA, TDX MRCONFIGID), when the TEE has one. Under
    /// Kata the field holds the initdata document's digest instead of the pin (see <see cref="KataInitdata"/>).
    /// </summary>
    public LaunchField? Field { get; init; }

    /// <summary>Why <see cref="Field"/>, read as a pin directly, is not one; null when it is one or is all zeros.</summary>
    public string? NotAPin { get; init; }

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
        var field = new LaunchField("SNP HOST_DATA", hostData.ToArray());
        return hostData.ContainsAnyExcept((byte)0)
            ? new MeasuredPin(hostData.ToArray(), $"{source} SNP HOST_DATA") { Field = field }
            : new MeasuredPin(null, $"{source} SNP HOST_DATA is all zeros") { Field = field };
    }

    /// <summary>
    /// TDX: MRCONFIGID is 48 bytes the host sets at TD creation and the TD report covers. Morphisms puts the 32-byte
    /// pin in bytes 0..31 and requires bytes 32..47 to be zero: anything else there means the field carries some other
    /// scheme's value (a 48-byte hash, say), and reading its prefix as a pin would trust an accident.
    /// <paramref name="configId"/> must come from the TD's own report (<see cref="TdxMrConfigIdReader"/>), never from
    /// a quote: the host's quoting service makes the quote and could put its own pin there.
    /// </summary>
    public static MeasuredPin FromTdxMrConfigId(ReadOnlySpan<byte> configId, string source)
    {
        var field = new LaunchField("TDX MRCONFIGID", configId.ToArray());
        if (!configId.ContainsAnyExcept((byte)0))
        {
            return new MeasuredPin(null, $"{source} TDX MRCONFIGID is all zeros") { Field = field };
        }

        if (configId.Length != MrConfigIdLength || configId[32..].ContainsAnyExcept((byte)0))
        {
            // Not an error yet: a Kata TD carries its initdata digest here, which the resolver checks when given the
            // document. Without one, the resolver refuses with this reason.
            return new MeasuredPin(null, $"{source} TDX MRCONFIGID")
            {
                Field = field,
                NotAPin = $"{source}: TDX MRCONFIGID {Convert.ToHexStringLower(configId)} is not a Morphisms KMS CA pin (32-byte SHA-256 followed by 16 zero bytes); "
                    + "if this is a Kata TD, pass its initdata document with --initdata",
            };
        }

        return new MeasuredPin(configId[..32].ToArray(), $"{source} TDX MRCONFIGID") { Field = field };
    }

    /// <summary>Parses a pin written as hex (64 digits; colons allowed, as fingerprints are often printed).</summary>
    public static byte[]? ParseHex(string hex)
    {
        hex = hex.Trim().Replace(":", "", StringComparison.Ordinal);
        return hex.Length == 64 && hex.All(char.IsAsciiHexDigit) ? Convert.FromHexString(hex) : null;
    }
}

/// <summary>A launch-time field of the TEE's report, verbatim.</summary>
/// <param name="Name">What it is, e.g. <c>SNP HOST_DATA</c>.</param>
/// <param name="Value">Its bytes (32 for HOST_DATA, 48 for MRCONFIGID).</param>
public sealed record LaunchField(string Name, byte[] Value);

/// <summary>An evidence provider that can read the KMS CA pin from its TEE's measured launch configuration.</summary>
public interface IMeasuredPinSource
{
    /// <summary>
    /// Reads the measured pin before anything is sent to the KMS. Returns a <see cref="MeasuredPin"/> without a value
    /// when the launch configuration carries none (with <see cref="MeasuredPin.NotAPin"/> set when the field holds
    /// something else, such as a Kata initdata digest); throws <see cref="EvidenceException"/> when the TEE cannot be read.
    /// </summary>
    Task<MeasuredPin> ReadKmsCaPinAsync(CancellationToken ct);
}
