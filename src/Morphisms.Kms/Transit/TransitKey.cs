using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Transit;

/// <summary>
/// A named transit key (<c>policy/NAME</c> under the barrier) with all its versions. Rotation adds a version;
/// <see cref="MinDecryptionVersion"/> is how old versions stop decrypting without deleting them.
/// </summary>
internal sealed class TransitKey
{
    /// <summary>The supported key types.</summary>
    public static readonly string[] Types = ["aes256-gcm96", "ecdsa-p256", "ed25519"];

    /// <summary><c>aes256-gcm96</c>, <c>ecdsa-p256</c> or <c>ed25519</c>.</summary>
    public string Type { get; set; } = "aes256-gcm96";

    /// <summary>The newest version.</summary>
    public int LatestVersion { get; set; }

    /// <summary>Versions below this refuse to decrypt (and to verify).</summary>
    public int MinDecryptionVersion { get; set; } = 1;

    /// <summary>The version encryption uses when asked for none (0: the latest).</summary>
    public int MinEncryptionVersion { get; set; }

    /// <summary>Whether the key may be deleted.</summary>
    public bool DeletionAllowed { get; set; }

    /// <summary>The versions' material by version number.</summary>
    public SortedDictionary<int, TransitKeyVersion> Versions { get; set; } = [];

    /// <summary>Whether the type encrypts.</summary>
    public bool SupportsEncryption => Type == "aes256-gcm96";

    /// <summary>Whether the type signs.</summary>
    public bool SupportsSigning => Type is "ecdsa-p256" or "ed25519";

    /// <summary>A new key of <paramref name="type"/> with version 1.</summary>
    public static TransitKey Create(string type, DateTimeOffset now)
    {
        var key = new TransitKey { Type = type };
        key.AddVersion(now);
        return key;
    }

    /// <summary>Adds a new version with fresh material.</summary>
    public void AddVersion(DateTimeOffset now)
    {
        LatestVersion++;
        Versions[LatestVersion] = TransitKeyVersion.Generate(Type, now);
    }

    /// <summary>The material of <paramref name="version"/> for decryption/verification; 400 when policy or history forbids it.</summary>
    public TransitKeyVersion ForDecryption(int version, string field)
    {
        if (version < MinDecryptionVersion)
        {
            throw KmsException.BadRequest($"invalid '{field}': key version {version.ToString(CultureInfo.InvariantCulture)} is below min_decryption_version and is disallowed by policy");
        }

        return Versions.TryGetValue(version, out var v) ? v
            : throw KmsException.BadRequest($"invalid '{field}': key version {version.ToString(CultureInfo.InvariantCulture)} does not exist");
    }

    /// <summary>The material for encrypting/signing with <paramref name="requested"/> (0 or null: the default).</summary>
    public (int Version, TransitKeyVersion Material) ForEncryption(long? requested)
    {
        var version = requested is null or 0 ? LatestVersion : requested.Value;
        if (version < MinEncryptionVersion || version > LatestVersion || version < MinDecryptionVersion)
        {
            throw KmsException.BadRequest($"invalid 'key_version': it must be between {Math.Max(MinEncryptionVersion, MinDecryptionVersion).ToString(CultureInfo.InvariantCulture)} and {LatestVersion.ToString(CultureInfo.InvariantCulture)}");
        }

        return ((int)version, Versions[(int)version]);
    }

    /// <summary>The read representation (public keys only; symmetric material never leaves).</summary>
    public JsonObject ToJson(string name)
    {
        var keys = new JsonObject();
        foreach (var (n, v) in Versions)
        {
            var label = n.ToString(CultureInfo.InvariantCulture);
            keys[label] = SupportsSigning
                ? new JsonObject { ["public_key"] = v.PublicKeyText(Type), ["creation_time"] = Timestamps.Rfc3339(v.CreatedTime), ["name"] = Type }
                : v.CreatedTime.ToUnixTimeSeconds();
        }

        return new JsonObject
        {
            ["name"] = name,
            ["type"] = Type,
            ["latest_version"] = LatestVersion,
            ["min_decryption_version"] = MinDecryptionVersion,
            ["min_encryption_version"] = MinEncryptionVersion,
            ["min_available_version"] = 0,
            ["deletion_allowed"] = DeletionAllowed,
            ["exportable"] = false,
            ["allow_plaintext_backup"] = false,
            ["supports_encryption"] = SupportsEncryption,
            ["supports_decryption"] = SupportsEncryption,
            ["supports_derivation"] = false,
            ["supports_signing"] = SupportsSigning,
            ["derived"] = false,
            ["keys"] = keys,
        };
    }
}

/// <summary>One version's material: the AES key, or the private and public key of a signing key.</summary>
internal sealed class TransitKeyVersion
{
    /// <summary>AES-256 key, ECDSA PKCS#8 or Ed25519 raw private key.</summary>
    public byte[] Key { get; set; } = [];

    /// <summary>The public key (SPKI for ECDSA, raw 32 bytes for Ed25519), empty for AES.</summary>
    public byte[] PublicKey { get; set; } = [];

    /// <summary>When the version was made.</summary>
    public DateTimeOffset CreatedTime { get; set; }

    /// <summary>Fresh material for <paramref name="type"/>.</summary>
    public static TransitKeyVersion Generate(string type, DateTimeOffset now)
    {
        switch (type)
        {
            case "aes256-gcm96":
                return new TransitKeyVersion { Key = RandomNumberGenerator.GetBytes(32), CreatedTime = now };
            case "ecdsa-p256":
                using (var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256))
                {
                    return new TransitKeyVersion { Key = ec.ExportPkcs8PrivateKey(), PublicKey = ec.ExportSubjectPublicKeyInfo(), CreatedTime = now };
                }

            default:
                var (priv, pub) = TransitSigning.NewEd25519();
                return new TransitKeyVersion { Key = priv, PublicKey = pub, CreatedTime = now };
        }
    }

    /// <summary>Vault's public-key text: PEM SPKI for ECDSA, base64 raw key for Ed25519.</summary>
    public string PublicKeyText(string type) =>
        type == "ed25519" ? Convert.ToBase64String(PublicKey) : new string(PemEncoding.Write("PUBLIC KEY", PublicKey)) + "\n";
}
