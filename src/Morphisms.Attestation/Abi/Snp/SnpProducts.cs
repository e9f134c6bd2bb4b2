namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// AMD EPYC product lines that support SEV-SNP, named as AMD's KDS and <see cref="Trust.TrustAnchors"/> name them,
/// and the ways to tell which one produced a report.
/// </summary>
public static class SnpProducts
{
    /// <summary>3rd-generation EPYC (Zen 3).</summary>
    public const string Milan = "Milan";

    /// <summary>4th-generation EPYC (Zen 4, including Bergamo and Siena, which AMD certifies as Genoa).</summary>
    public const string Genoa = "Genoa";

    /// <summary>5th-generation EPYC (Zen 5).</summary>
    public const string Turin = "Turin";

    /// <summary>
    /// The product line for a CPUID family/model, or null when it is not a known SEV-SNP part.
    /// Ranges follow AMD's processor programming references: Milan is family 19h models 00h–0Fh,
    /// Genoa 19h models 10h–1Fh and A0h–AFh (Bergamo/Siena), Turin 1Ah models 00h–1Fh.
    /// </summary>
    public static string? FromCpuid(SnpCpuid cpuid) => (cpuid.Family, cpuid.Model) switch
    {
        (0x19, <= 0x0F) => Milan,
        (0x19, >= 0x10 and <= 0x1F) or (0x19, >= 0xA0 and <= 0xAF) => Genoa,
        (0x1A, <= 0x1F) => Turin,
        _ => null,
    };

    /// <summary>
    /// The product line named by a VCEK/VLEK <c>productName</c> extension (<c>Milan-B0</c> → <c>Milan</c>),
    /// or null when it names none we know.
    /// </summary>
    public static string? FromProductName(string? productName)
    {
        if (string.IsNullOrWhiteSpace(productName))
        {
            return null;
        }

        var line = productName.Split('-', 2)[0].Trim();
        return Normalize(line);
    }

    /// <summary>
    /// The product line named by the issuer of a VCEK (<c>SEV-Milan</c>) or VLEK (<c>SEV-VLEK-Milan</c>),
    /// or null when the name does not have that form.
    /// </summary>
    public static string? FromIssuerCommonName(string? commonName)
    {
        if (commonName is null)
        {
            return null;
        }

        if (commonName.StartsWith("SEV-VLEK-", StringComparison.Ordinal))
        {
            return Normalize(commonName["SEV-VLEK-".Length..]);
        }

        return commonName.StartsWith("SEV-", StringComparison.Ordinal) ? Normalize(commonName["SEV-".Length..]) : null;
    }

    /// <summary>The TCB layout a product uses; unknown products are assumed to use the Milan/Genoa layout.</summary>
    public static TcbLayout TcbLayoutOf(string? product) =>
        string.Equals(product, Turin, StringComparison.OrdinalIgnoreCase) ? TcbLayout.Turin : TcbLayout.Legacy;

    /// <summary>The common name AMD gives the intermediate that certifies a product's VCEKs or VLEKs.</summary>
    public static string IntermediateCommonName(string product, SnpSigningKey signer) =>
        signer == SnpSigningKey.Vlek ? $"SEV-VLEK-{product}" : $"SEV-{product}";

    private static string? Normalize(string line) =>
        line.Equals(Milan, StringComparison.OrdinalIgnoreCase) ? Milan
        : line.Equals(Genoa, StringComparison.OrdinalIgnoreCase) ? Genoa
        : line.Equals(Turin, StringComparison.OrdinalIgnoreCase) ? Turin
        : null;
}
