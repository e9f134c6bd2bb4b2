using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Client.Trust;

/// <summary>
/// The TLS trust a client takes from a <c>morph kms trust</c> record when it talks to the KMS itself (<c>morph kms</c>,
/// and the CRL fetch of <see cref="Functions.FunctionHttpHandler"/>): the server must present a TLS key that
/// <c>morph kms trust</c> attested (<see cref="KmsTrustRecord.TlsSpkiSha256"/>, the key the KMS's evidence binds) for a
/// KMS holding the same root CA and running code this record accepts, with a certificate that names the host. That
/// covers the address itself and the other nodes of an HA cluster the user trusted by their own addresses (they share
/// the root CA, which lives behind their common barrier, and run the same or an accepted KMS build), and nothing else:
/// a standby's <c>Location</c> comes from the database, which is not trusted, so a redirect whose target passes only
/// the system roots gets no request and no token.
/// </summary>
/// <remarks>
/// The record's root CA itself is no TLS anchor: a KMS's TLS certificate is self-signed or the operator's, not issued
/// under that root, and the root also signs function and <c>pki/</c> role certificates, which are no KMS. Like the
/// agent's <see cref="Morphisms.Attestation.Trust.KmsPin"/>, the pin replaces the system trust store but not the host
/// name check, and nothing is trusted on first use here. A redirect is followed under it only as
/// <see cref="RedirectKeepsRequest"/> allows, at most <see cref="MaxRedirects"/> times. One instance serves one request
/// at a time (<see cref="LastFailure"/> is its last handshake's).
/// </remarks>
public sealed class KmsTlsPin
{
    /// <summary>How many 307/308 redirects one request follows (a standby to the active node is one).</summary>
    public const int MaxRedirects = Morphisms.Attestation.Trust.KmsRedirect.MaxRedirects;

    private readonly HashSet<string> _keys;
    private readonly bool _recordAlone;

    private KmsTlsPin(KmsTrustRecord record, IEnumerable<string> keys, bool recordAlone)
    {
        Record = record;
        _keys = new HashSet<string>(keys, StringComparer.OrdinalIgnoreCase);
        _recordAlone = recordAlone;
    }

    /// <summary>The trust record for the address the client was given.</summary>
    public KmsTrustRecord Record { get; }

    /// <summary>Why the last handshake was refused, or null (set by <see cref="Validate"/>, cleared by <see cref="Reset"/>).</summary>
    public string? LastFailure { get; private set; }

    /// <summary>
    /// The pin for <paramref name="address"/>, or null when <paramref name="store"/> holds no record for it: see
    /// <see cref="For(KmsTrustRecord, IEnumerable{KmsTrustRecord})"/>, with the store's records.
    /// </summary>
    /// <exception cref="InvalidDataException">The store is not a trust store.</exception>
    public static KmsTlsPin? For(KmsTrustStore store, Uri address)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.Find(address.ToString()) is { } record ? For(record, store.All()) : null;
    }

    /// <summary>
    /// The pin of <paramref name="record"/>: its TLS key and those of the <paramref name="records"/> with the same root CA
    /// that were checked at least as strictly (not with <c>--any-measurement</c> or a simulated TEE unless
    /// <paramref name="record"/> was, and usable: <see cref="KmsTrustRecord.UsabilityProblem"/>) and attested a
    /// measurement <paramref name="record"/> expects (any, when it was made with <c>--any-measurement</c>).
    /// </summary>
    public static KmsTlsPin For(KmsTrustRecord record, IEnumerable<KmsTrustRecord> records)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(records);

        // Another address's key counts only if its record was checked at least as strictly and its server ran code this
        // record accepts: the root CA is public, so a record made with --any-measurement (or of a simulated TEE, or before
        // measurements were recorded, or of another KMS build this user trusts elsewhere, which may present any root) may
        // bind it beside a key of a server that is no node of this KMS, and must not widen this record's pin. Each node
        // is still trusted by its own address: this only lets a standby's redirect reach it.
        var keys = records
            .Where(r => string.Equals(r.RootCaSha256, record.RootCaSha256, StringComparison.OrdinalIgnoreCase))
            .Where(r => r == record || (AtLeastAsStrict(r, record) && AttestedAnAcceptedMeasurement(r, record)))
            .Select(r => r.TlsSpkiSha256)
            .Append(record.TlsSpkiSha256);
        return new KmsTlsPin(record, keys, recordAlone: false);
    }

    /// <summary>The pin of <paramref name="record"/> alone: only its own TLS key passes.</summary>
    public static KmsTlsPin Of(KmsTrustRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new KmsTlsPin(record, [record.TlsSpkiSha256], recordAlone: true);
    }

    /// <summary>
    /// Whether a redirect from <paramref name="target"/> to <paramref name="next"/> asks for the same request elsewhere:
    /// same path and query, no user info or fragment (<see cref="Morphisms.Attestation.Trust.KmsRedirect.KeepsRequest"/>,
    /// the agent's and the serving host's rule). A standby builds its <c>Location</c> from the active node's
    /// <c>api_addr</c> in storage the KMS does not trust; one with a path (<c>https://node2:8200/v1/sys/policies/acl/x#</c>)
    /// would land the request on another path of a real, pinned node. An active node is the same API elsewhere, so only
    /// scheme, host and port may change.
    /// </summary>
    public static bool RedirectKeepsRequest(Uri target, Uri next) => Morphisms.Attestation.Trust.KmsRedirect.KeepsRequest(target, next);

    private static bool AtLeastAsStrict(KmsTrustRecord other, KmsTrustRecord record) =>
        other.UsabilityProblem() is null && (!other.AnyMeasurement || record.AnyMeasurement) && (!other.Simulated || record.Simulated);

    /// <summary>
    /// Whether <paramref name="other"/>'s server attested one of the measurements <paramref name="record"/> expects
    /// (every component, of the same TEE), or <paramref name="record"/> accepts any. A value that does not parse matches nothing.
    /// </summary>
    private static bool AttestedAnAcceptedMeasurement(KmsTrustRecord other, KmsTrustRecord record)
    {
        if (record.AnyMeasurement)
        {
            return true;
        }

        if (TryParse(other.Measurement) is not { } attested)
        {
            return false;
        }

        // Accepts, not Equals: a node's record carries HOST_DATA / MRCONFIGID when its KMS attests one, which a pin made
        // without them (before they were recorded) does not name, and it still accepts that node as it accepted this one.
        return record.ExpectedMeasurements.Any(expected => TryParse(expected)?.Accepts(attested) == true);

        static KmsMeasurementPin? TryParse(string? text)
        {
            try
            {
                return text is null ? null : KmsMeasurementPin.Parse(text);
            }
            catch (FormatException)
            {
                return null;
            }
        }
    }

    /// <summary>Forgets the last failure (before a request, so a pooled connection's earlier refusal is not reported).</summary>
    public void Reset() => LastFailure = null;

    /// <summary>Checks one handshake: a certificate that names the host, with a TLS key attested for this KMS.</summary>
    public bool Validate(X509Certificate? certificate, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            LastFailure = "it presented no TLS certificate";
            return false;
        }

        // The pin replaces the trust store, not the host name check.
        if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
        {
            LastFailure = $"its TLS certificate does not match the host name ({errors})";
            return false;
        }

        using var presented = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        var key = Convert.ToHexStringLower(SHA256.HashData(presented.PublicKey.ExportSubjectPublicKeyInfo()));
        if (!_keys.Contains(key))
        {
            LastFailure = _recordAlone
                ? $"its TLS key (SPKI sha256 {key}) is not the one `morph kms trust` attested ({Record.TlsSpkiSha256}): trust the KMS again if it changed its TLS key"
                : $"its TLS key (SPKI sha256 {key}) is not one `morph kms trust` attested for the KMS with root CA sha256 {Record.RootCaSha256}";
            return false;
        }

        LastFailure = null;
        return true;
    }
}
