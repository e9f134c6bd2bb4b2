using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Kms.SelfAttestation;

/// <summary>
/// What the KMS reports as its launch measurement in simulated evidence: SHA-384 over the assemblies that make up
/// the KMS (its own and the attestation library), so a changed KMS build attests differently, as a changed
/// enclave or VM image would. The whole application directory is not hashed: it holds unrelated, changing files.
/// </summary>
public static class KmsMeasurement
{
    private static readonly Lazy<byte[]> Cached = new(Compute);

    /// <summary>The 48-byte measurement of this process's KMS build (computed once).</summary>
    public static byte[] Simulated => (byte[])Cached.Value.Clone();

    private static byte[] Compute()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA384);
        hash.AppendData("morphisms/kms-measurement/v1\0"u8);
        foreach (var assembly in new[] { typeof(KmsMeasurement).Assembly, typeof(Attestation.EvidenceVerifier).Assembly })
        {
            var name = Encoding.UTF8.GetBytes(assembly.GetName().Name ?? "");
            var content = assembly.Location is { Length: > 0 } location ? File.ReadAllBytes(location) : [];
            AppendWithLength(hash, name);

            // A single-file build has no assembly file to read; its name alone is then measured.
            AppendWithLength(hash, content);
        }

        return hash.GetHashAndReset();
    }

    private static void AppendWithLength(IncrementalHash hash, byte[] bytes)
    {
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(length, bytes.Length);
        hash.AppendData(length);
        hash.AppendData(bytes);
    }
}
