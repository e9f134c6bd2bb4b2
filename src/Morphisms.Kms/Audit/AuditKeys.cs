using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Kms.Audit;

/// <summary>
/// The two keys of the audit log, derived from one 32-byte secret kept under the barrier: one HMACs request and
/// response values (so the log can be searched for a known value without revealing any), the other MACs the
/// chain (so only a key holder can forge or re-chain entries).
/// </summary>
public sealed class AuditKeys
{
    /// <summary>Where the audit secret lives under the barrier.</summary>
    internal const string StoragePath = "core/audit/key";

    private AuditKeys(byte[] valueKey, byte[] chainKey)
    {
        ValueKey = valueKey;
        ChainKey = chainKey;
    }

    /// <summary>The key of <c>hmac-sha256:</c> value hashes.</summary>
    public byte[] ValueKey { get; }

    /// <summary>The key of each entry's chain MAC; <see cref="AuditLogVerifier"/> needs it to check MACs.</summary>
    public byte[] ChainKey { get; }

    /// <summary>Derives both keys from the stored secret.</summary>
    public static AuditKeys Derive(ReadOnlySpan<byte> secret) => new(
        HKDF.DeriveKey(HashAlgorithmName.SHA256, secret.ToArray(), 32, [], Encoding.UTF8.GetBytes("morphisms/kms/audit/values")),
        HKDF.DeriveKey(HashAlgorithmName.SHA256, secret.ToArray(), 32, [], Encoding.UTF8.GetBytes("morphisms/kms/audit/chain")));

    /// <summary>HMAC-SHA256 of <paramref name="value"/> in Vault's audit notation, <c>hmac-sha256:HEX</c>.</summary>
    public string Hash(string value) => "hmac-sha256:" + Convert.ToHexStringLower(HMACSHA256.HashData(ValueKey, Encoding.UTF8.GetBytes(value)));

    /// <summary>Overwrites the keys in memory.</summary>
    internal void Zero()
    {
        CryptographicOperations.ZeroMemory(ValueKey);
        CryptographicOperations.ZeroMemory(ChainKey);
    }
}
