namespace Morphisms.Attestation;

/// <summary>The kind of trusted execution environment a piece of evidence comes from.</summary>
public enum TeeType
{
    /// <summary>AMD SEV-SNP confidential VM (attestation report signed by a VCEK or VLEK).</summary>
    Snp,

    /// <summary>Intel SGX enclave (DCAP ECDSA quote).</summary>
    Sgx,

    /// <summary>Intel TDX trust domain (DCAP ECDSA quote with a TD report body).</summary>
    Tdx,
}

/// <summary>Parsing and naming helpers for <see cref="TeeType"/>.</summary>
public static class TeeTypes
{
    /// <summary>The lowercase name used on the wire and on the command line (<c>snp</c>, <c>sgx</c>, <c>tdx</c>).</summary>
    public static string ToWireName(this TeeType tee) => tee switch
    {
        TeeType.Snp => "snp",
        TeeType.Sgx => "sgx",
        TeeType.Tdx => "tdx",
        _ => throw new ArgumentOutOfRangeException(nameof(tee)),
    };

    /// <summary>Parses a wire name; returns false for anything else.</summary>
    public static bool TryParse(string? name, out TeeType tee)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case "snp": tee = TeeType.Snp; return true;
            case "sgx": tee = TeeType.Sgx; return true;
            case "tdx": tee = TeeType.Tdx; return true;
            default: tee = default; return false;
        }
    }
}
