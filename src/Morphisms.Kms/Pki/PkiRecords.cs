namespace Morphisms.Kms.Pki;

/// <summary>An issuer of a PKI mount, stored at <c>issuers/ID</c>.</summary>
internal sealed class IssuerRecord
{
    /// <summary>Random id (the KMS root is <see cref="KmsRootCa.KmsRootIssuerId"/> and never stored here).</summary>
    public string Id { get; set; } = "";

    /// <summary>The certificate, PEM.</summary>
    public string Certificate { get; set; } = "";

    /// <summary>The issuer's chain above itself, PEM, nearest first (empty for a root).</summary>
    public List<string> Parents { get; set; } = [];

    /// <summary>The key, PKCS#8 PEM.</summary>
    public string PrivateKey { get; set; } = "";

    /// <summary>Self-signed.</summary>
    public bool IsRoot { get; set; }

    /// <summary>Set when a newer issuer took over (rotation): the issuer stays in the chain until <see cref="LastLeafNotAfter"/>.</summary>
    public DateTimeOffset? RetiredAt { get; set; }

    /// <summary>The latest NotAfter of a leaf it signed: the moment it may leave the served chain.</summary>
    public DateTimeOffset? LastLeafNotAfter { get; set; }

    /// <summary>When it was added.</summary>
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>
    /// Its place in the order the mount's issuers were stored (1, 2, …; 0 for issuers stored before the field
    /// existed). "The newest root" must not depend on two issuers' creation times differing, nor on the order of
    /// their random ids when they do not.
    /// </summary>
    public long Sequence { get; set; }

    /// <summary>The issuer's state at <paramref name="now"/>: active (default), retiring (leaves still valid), retired, or root.</summary>
    public string StateAt(DateTimeOffset now, string? defaultId) =>
        Id == defaultId ? "active"
        : RetiredAt is null ? (IsRoot ? "root" : "standby")
        : LastLeafNotAfter is { } last && last > now ? "retiring"
        : "retired";
}

/// <summary>The mount-wide issuer configuration, at <c>config/issuers</c>.</summary>
internal sealed class IssuersConfig
{
    /// <summary>The issuer that signs leaves, CRLs and rotations' successors.</summary>
    public string? Default { get; set; }

    /// <summary>The domain of function certificates (<c>FUNCTION.DOMAIN</c>).</summary>
    public string? FunctionDomain { get; set; }

    /// <summary>The last <see cref="IssuerRecord.Sequence"/> handed out.</summary>
    public long LastIssuerSequence { get; set; }
}

/// <summary>A key made by <c>intermediate/generate/internal</c>, waiting for its signed certificate.</summary>
internal sealed class PendingKey
{
    /// <summary>The key, PKCS#8 PEM.</summary>
    public string PrivateKey { get; set; } = "";

    /// <summary>When it was generated.</summary>
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>An issued certificate, at <c>certs/SERIALHEX</c>.</summary>
internal sealed class CertRecord
{
    /// <summary>The certificate, PEM.</summary>
    public string Certificate { get; set; } = "";

    /// <summary>The issuer that signed it.</summary>
    public string IssuerId { get; set; } = "";

    /// <summary>When it was revoked, if it was.</summary>
    public DateTimeOffset? RevokedAt { get; set; }
}

/// <summary>The revocation list's state, at <c>crl/state</c>: revoked serials and the CRL number.</summary>
internal sealed class CrlState
{
    /// <summary>Revoked certificates.</summary>
    public List<RevokedEntry> Revoked { get; set; } = [];

    /// <summary>
    /// Incremented with every revocation, and by the aged entries it prunes; the served number adds the entries aged
    /// since (<c>PkiBackend.CrlNumber</c>), so it grows whenever the contents change (RFC 5280 §5.2.3).
    /// </summary>
    public long Number { get; set; } = 1;
}

/// <summary>One revoked certificate.</summary>
/// <param name="Serial">Serial, plain hex.</param>
/// <param name="IssuerId">Issuer that signed it.</param>
/// <param name="RevokedAt">Revocation time.</param>
/// <param name="NotAfter">The certificate's expiry (the entry could be pruned after it).</param>
internal sealed record RevokedEntry(string Serial, string IssuerId, DateTimeOffset RevokedAt, DateTimeOffset NotAfter);
