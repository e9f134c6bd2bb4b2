namespace Morphisms.Attestation.Collateral;

/// <summary>Where <see cref="IntelPcsCollateralSource"/> fetches collateral.</summary>
public sealed record IntelPcsOptions
{
    /// <summary>
    /// Base address of Intel PCS, or of a PCCS caching service, which serves the same
    /// <c>/sgx/certification/v4/…</c> and <c>/tdx/certification/v4/…</c> paths.
    /// </summary>
    public Uri BaseAddress { get; init; } = new("https://api.trustedservices.intel.com/");

    /// <summary>Where the Intel SGX Root CA CRL is published (PCS's API does not serve it); null to skip it.</summary>
    public Uri? RootCaCrlAddress { get; init; } = new("https://certificates.trustedservices.intel.com/IntelSGXRootCA.der");

    /// <summary>PCS <c>update</c> parameter for TCB info and identities: null (Intel's default, "standard") or "early".</summary>
    public string? Update { get; init; }

    /// <summary>Responses larger than this are refused: real collateral is a few kilobytes.</summary>
    public int MaxResponseBytes { get; init; } = 1024 * 1024;
}
