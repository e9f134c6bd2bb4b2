using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Remembers the expensive, time-independent results of SNP verification: parsed certificates with
/// their keys and extensions, and whether one certificate (or CRL) is signed by another. Entries are
/// keyed by the SHA-256 of the exact bytes, so a cached verdict applies only to identical inputs; time
/// validity is never cached (it is cheap and depends on the evaluation time). After the first report
/// for a chain, verifying another costs about one ECDSA verification.
/// </summary>
internal sealed class SnpVerificationCache
{
    private readonly int _maxEntries;
    private readonly ConditionalWeakTable<X509Certificate2, CertificateFacts> _byInstance = new();
    private readonly ConditionalWeakTable<CertificateRevocationList, StrongBox<Sha256Key>> _crlHashes = new();
    private readonly ConcurrentDictionary<Sha256Key, CertificateFacts> _byContent = new();
    private readonly ConcurrentDictionary<(Sha256Key Subject, Sha256Key Issuer), bool> _signedBy = new();
    private readonly ConcurrentDictionary<Sha256Key, CertificateRevocationList> _crls = new();

    public SnpVerificationCache(int maxEntries = 4096)
    {
        _maxEntries = maxEntries;
    }

    /// <summary>The process-wide cache the verifier uses by default.</summary>
    public static SnpVerificationCache Shared { get; } = new();

    public CertificateFacts Facts(X509Certificate2 certificate)
    {
        if (_byInstance.TryGetValue(certificate, out var known))
        {
            return known;
        }

        var hash = Sha256Key.Of(certificate.RawDataMemory.Span);
        var facts = GetOrAdd(_byContent, hash, (certificate, hash), static s => new CertificateFacts(s.certificate, s.hash));
        _byInstance.AddOrUpdate(certificate, facts);
        return facts;
    }

    /// <summary>True when <paramref name="issuer"/>'s name is <paramref name="subject"/>'s issuer and its key signed <paramref name="subject"/>.</summary>
    public bool IsSignedBy(CertificateFacts subject, CertificateFacts issuer) =>
        subject.IssuerName.AsSpan().SequenceEqual(issuer.SubjectName)
        && GetOrAdd(_signedBy, (subject.Hash, issuer.Hash), (subject, issuer), static s =>
            X509Signature.Verify(s.subject.SignedPart.Span, s.subject.Signature, s.subject.SignatureAlgorithm, s.issuer.Certificate));

    public CertificateRevocationList ParseCrl(byte[] bytes) =>
        GetOrAdd(_crls, Sha256Key.Of(bytes), bytes, static b => CertificateRevocationList.Parse(b));

    public bool IsCrlSignedBy(CertificateRevocationList crl, CertificateFacts issuer)
    {
        var crlHash = _crlHashes.GetValue(crl, static c => new StrongBox<Sha256Key>(Sha256Key.Of(c.RawData))).Value;
        return GetOrAdd(_signedBy, (crlHash, issuer.Hash), (crl, issuer), static s => s.crl.VerifySignature(s.issuer.Certificate));
    }

    // Bounded so hostile input (a new certificate per request) cannot grow memory without limit;
    // dropping everything on overflow is crude but keeps the hit path free of bookkeeping.
    private TValue GetOrAdd<TKey, TValue, TState>(ConcurrentDictionary<TKey, TValue> map, TKey key, TState state, Func<TState, TValue> create)
        where TKey : notnull
    {
        if (map.TryGetValue(key, out var value))
        {
            return value;
        }

        if (map.Count >= _maxEntries)
        {
            map.Clear();
        }

        return map.GetOrAdd(key, create(state));
    }
}
