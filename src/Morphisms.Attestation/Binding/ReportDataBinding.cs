using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Attestation.Binding;

/// <summary>
/// The 64-byte REPORT_DATA values of Morphisms' protocols (DESIGN.md §3). Binding a fresh nonce and
/// the hash of a key generated inside the TEE into hardware-signed evidence proves that the key
/// lives in that TEE and that the evidence is not a replay.
/// </summary>
public static class ReportDataBinding
{
    /// <summary>Domain label of a function instance's attest-login evidence.</summary>
    public const string FunctionDomain = "morphisms/attest/v1";

    /// <summary>Domain label of the KMS's own evidence.</summary>
    public const string KmsDomain = "morphisms/kms/v1";

    /// <summary>SHA-512("morphisms/attest/v1" ‖ nonce ‖ SHA-256(SPKI DER of the TEE-generated key)).</summary>
    public static byte[] ForFunction(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> subjectPublicKeyInfo) =>
        Hash(FunctionDomain, nonce, SHA256.HashData(subjectPublicKeyInfo), []);

    /// <summary>SHA-512("morphisms/kms/v1" ‖ nonce ‖ SHA-256(TLS certificate SPKI) ‖ SHA-256(root CA certificate DER)).</summary>
    public static byte[] ForKms(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> tlsSubjectPublicKeyInfo, ReadOnlySpan<byte> rootCaCertificate) =>
        Hash(KmsDomain, nonce, SHA256.HashData(tlsSubjectPublicKeyInfo), SHA256.HashData(rootCaCertificate));

    /// <summary>Compares in constant time, so a mismatch leaks nothing about where it differs.</summary>
    public static bool Matches(ReadOnlySpan<byte> reportData, ReadOnlySpan<byte> expected) =>
        reportData.Length == expected.Length && CryptographicOperations.FixedTimeEquals(reportData, expected);

    private static byte[] Hash(string domain, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);
        hash.AppendData(Encoding.ASCII.GetBytes(domain));
        hash.AppendData(nonce);
        hash.AppendData(first);
        hash.AppendData(second);
        return hash.GetHashAndReset();
    }
}
