using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Verifies the PCK chain carried in a quote: leaf → PCK Platform/Processor CA → a trusted Intel
/// root. The root embedded in the quote is never trusted for being there; it must be one of the
/// anchors, and the CA's signature is checked with the anchor's key. Everything that does not depend
/// on time is cached by the chain's bytes and the anchor set, so repeat quotes from a platform cost
/// only a hash and a validity-window comparison.
/// </summary>
public static class PckChainVerifier
{
    /// <summary>Check name for chain failures.</summary>
    public const string Check = "dcap.pck_chain";

    /// <summary>Check name for a malformed SGX extension in the PCK certificate.</summary>
    public const string ExtensionsCheck = "dcap.pck_extensions";

    private static readonly BoundedCache<(DigestKey Chain, DigestKey Anchors), Entry> Cache = new(512);

    /// <summary>
    /// Verifies the certification data of a quote (type 5, PEM chain) at <paramref name="time"/>,
    /// recording every failure in <paramref name="log"/>. Returns what could be read, even on failure.
    /// </summary>
    public static PckChain Verify(CertificationData certificationData, TrustAnchors anchors, DateTimeOffset time, CheckLog log)
    {
        if (!certificationData.IsPckCertificateChain)
        {
            log.Fail(Check, $"certification data type {certificationData.Type} carries no PCK certificate chain (expected type 5)");
            return new PckChain();
        }

        var key = (DigestKey.Of(certificationData.Data.Span), AnchorIdentity.Of(anchors));
        if (!Cache.TryGet(key, out var entry))
        {
            entry = Build(certificationData.Data, anchors);
            Cache.Set(key, entry);
        }

        foreach (var failure in entry.Failures)
        {
            log.Fail(failure.Check, failure.Reason);
        }

        foreach (var (name, notBefore, notAfter) in entry.Validity)
        {
            if (time < notBefore || time > notAfter)
            {
                log.Fail(Check, $"{name} is not valid at {time:yyyy-MM-ddTHH:mm:ssZ} (valid {notBefore:yyyy-MM-ddTHH:mm:ssZ} to {notAfter:yyyy-MM-ddTHH:mm:ssZ})");
            }
        }

        return entry.Chain;
    }

    internal static void ClearCache() => Cache.Clear();

    private sealed record Entry(PckChain Chain, IReadOnlyList<CheckFailure> Failures, IReadOnlyList<(string Name, DateTimeOffset NotBefore, DateTimeOffset NotAfter)> Validity);

    private static Entry Build(ReadOnlyMemory<byte> pem, TrustAnchors anchors)
    {
        var log = new CheckLog();
        IReadOnlyList<X509Certificate2> certificates;
        try
        {
            certificates = PckCertificateChainPem.Parse(pem.Span);
        }
        catch (EvidenceFormatException e)
        {
            log.Fail(Check, e.Message);
            return new Entry(new PckChain(), log.Failures, []);
        }

        var leaf = certificates[0];
        var validity = new List<(string, DateTimeOffset, DateTimeOffset)> { Window("PCK certificate", leaf) };
        var extensions = ReadExtensions(leaf, log);
        var leafKey = ReadLeafKey(leaf, log);

        var intermediate = certificates.Skip(1).FirstOrDefault(c => SameName(c.SubjectName, leaf.IssuerName));
        if (intermediate is null)
        {
            log.Fail(Check, $"the issuer of the PCK certificate ({leaf.Issuer}) is not in the chain");
            return new Entry(new PckChain { Leaf = leaf, Extensions = extensions, LeafKey = leafKey }, log.Failures, validity);
        }

        validity.Add(Window("PCK CA certificate", intermediate));
        var caType = ClassifyCa(intermediate, log);
        log.Require(CertificateSignature.IsCertificateAuthority(intermediate), Check, $"{intermediate.Subject} is not a CA certificate");
        log.Require(CertificateSignature.IsSignedBy(leaf, intermediate), Check, $"the PCK certificate's signature by {intermediate.Subject} does not verify");

        var root = anchors.Intel.FirstOrDefault(a => CertificateSignature.IsSignedBy(intermediate, a.Certificate));
        if (root is null)
        {
            log.Fail(Check, $"{intermediate.Subject} is not issued by a trusted Intel root (issuer {intermediate.Issuer})");
        }
        else
        {
            validity.Add(Window("root CA certificate", root.Certificate));
            var embeddedRoot = certificates.Skip(1).FirstOrDefault(c => c != intermediate && SameName(c.SubjectName, intermediate.IssuerName));
            if (embeddedRoot is not null && !IsSameRoot(embeddedRoot, root.Certificate))
            {
                log.Fail(Check, "the root certificate in the quote differs from the trusted Intel root of the same name");
            }
        }

        var chain = new PckChain
        {
            Leaf = leaf,
            Intermediate = intermediate,
            Root = root,
            Extensions = extensions,
            CaType = caType,
            LeafKey = leafKey,
            ReachesTrustedRoot = root is not null && log.Failures.All(f => f.Check != Check),
        };
        return new Entry(chain, log.Failures, validity);
    }

    private static PckExtensions? ReadExtensions(X509Certificate2 leaf, CheckLog log)
    {
        try
        {
            return PckExtensions.FromCertificate(leaf);
        }
        catch (EvidenceFormatException e)
        {
            log.Fail(ExtensionsCheck, e.Message);
            return null;
        }
    }

    private static ECDsa? ReadLeafKey(X509Certificate2 leaf, CheckLog log)
    {
        ECDsa? key = null;
        try
        {
            key = leaf.GetECDsaPublicKey();
        }
        catch (CryptographicException)
        {
        }

        if (key is null || key.KeySize != 256)
        {
            key?.Dispose();
            log.Fail(Check, "the PCK certificate's key is not ECDSA P-256");
            return null;
        }

        return key;
    }

    private static PckCaType? ClassifyCa(X509Certificate2 intermediate, CheckLog log)
    {
        // Intel names them "Intel SGX PCK Platform CA" and "Intel SGX PCK Processor CA"; the CRL to
        // use depends on which one it is.
        var name = intermediate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        if (name.Contains("Processor", StringComparison.OrdinalIgnoreCase))
        {
            return PckCaType.Processor;
        }

        if (name.Contains("Platform", StringComparison.OrdinalIgnoreCase))
        {
            return PckCaType.Platform;
        }

        log.Fail(Check, $"cannot tell whether {intermediate.Subject} is the PCK Platform or Processor CA");
        return null;
    }

    private static bool IsSameRoot(X509Certificate2 embedded, X509Certificate2 anchor) =>
        embedded.RawData.AsSpan().SequenceEqual(anchor.RawData)
        || (SameName(embedded.SubjectName, anchor.SubjectName)
            && embedded.PublicKey.EncodedKeyValue.RawData.AsSpan().SequenceEqual(anchor.PublicKey.EncodedKeyValue.RawData));

    private static bool SameName(X500DistinguishedName a, X500DistinguishedName b) => a.RawData.AsSpan().SequenceEqual(b.RawData);

    private static (string, DateTimeOffset, DateTimeOffset) Window(string name, X509Certificate2 certificate) =>
        (name, new DateTimeOffset(certificate.NotBefore.ToUniversalTime()), new DateTimeOffset(certificate.NotAfter.ToUniversalTime()));
}
