using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Trust;

/// <summary>
/// Public Intel intermediate certificates embedded so that collateral verifies even when it arrives
/// without its issuer chain (plain Intel PCS JSON files, PCCS caches). They are never trusted on their
/// own: every use checks them against a trusted root, exactly like a certificate supplied with collateral.
/// </summary>
public static class KnownIntermediates
{
    private static readonly Lazy<IReadOnlyList<X509Certificate2>> TcbSigning = new(() =>
    [
        // Intel re-issued the TCB Signing certificate in 2025 with the same key and serial number;
        // collateral issued after 2025-05-21 needs the new one to pass a strict validity check.
        Load("intel_sgx_tcb_signing_2018-2025.pem"),
        Load("intel_sgx_tcb_signing_2025-2032.pem"),
    ]);

    /// <summary>The Intel SGX TCB Signing certificates (2018–2025 and its 2025–2032 re-issue), both issued by the Intel SGX Root CA.</summary>
    public static IReadOnlyList<X509Certificate2> IntelTcbSigning => TcbSigning.Value;

    private static X509Certificate2 Load(string name)
    {
        var assembly = typeof(KnownIntermediates).Assembly;
        using var stream = assembly.GetManifestResourceStream($"Morphisms.Attestation.Trust.Intermediates.{name}")
            ?? throw new InvalidOperationException($"embedded intermediate certificate {name} is missing from the build");
        using var reader = new StreamReader(stream);
        return X509Certificate2.CreateFromPem(reader.ReadToEnd());
    }
}
