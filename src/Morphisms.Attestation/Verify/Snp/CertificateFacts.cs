using System.Collections.Concurrent;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Everything the verifier needs from one certificate, read once and kept: names, validity, public
/// key, serial, the AMD extensions and ready-to-use ECDSA keys. Reading these from an
/// <see cref="X509Certificate2"/> goes to native code each time, which would dominate a cached verification.
/// </summary>
internal sealed class CertificateFacts
{
    private const string P384Oid = "1.3.132.0.34";

    private readonly ConcurrentBag<ECDsa> _keys = [];
    private readonly byte[]? _ecPublicKeyInfo;

    public CertificateFacts(X509Certificate2 certificate, Sha256Key hash)
    {
        // Our own instance: the caller may dispose theirs while this entry still serves other callers.
        Certificate = X509CertificateLoader.LoadCertificate(certificate.RawDataMemory.Span);
        Hash = hash;
        SubjectName = certificate.SubjectName.RawData;
        IssuerName = certificate.IssuerName.RawData;
        Subject = certificate.Subject;
        Issuer = certificate.Issuer;
        SubjectCommonName = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        IssuerCommonName = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: true);
        NotBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        NotAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        PublicKeyInfo = certificate.PublicKey.ExportSubjectPublicKeyInfo();
        SerialNumber = certificate.SerialNumberBytes.ToArray();
        IsSelfIssued = SubjectName.AsSpan().SequenceEqual(IssuerName);
        (Extensions, ExtensionsError) = ReadExtensions(certificate);

        var ecdsa = ReadEcdsaKey(certificate);
        if (ecdsa is not null && IsP384(ecdsa))
        {
            _ecPublicKeyInfo = PublicKeyInfo;
            _keys.Add(ecdsa);
        }
        else
        {
            ecdsa?.Dispose();
        }

        var der = Certificate.RawDataMemory;
        var outer = new AsnReader(der, AsnEncodingRules.DER).ReadSequence();
        SignedPart = outer.ReadEncodedValue();
        SignatureAlgorithm = outer.ReadEncodedValue();
        Signature = outer.ReadBitString(out _);
    }

    public X509Certificate2 Certificate { get; }

    public Sha256Key Hash { get; }

    public byte[] SubjectName { get; }

    public byte[] IssuerName { get; }

    public string Subject { get; }

    public string Issuer { get; }

    public string SubjectCommonName { get; }

    public string IssuerCommonName { get; }

    public DateTimeOffset NotBefore { get; }

    public DateTimeOffset NotAfter { get; }

    public byte[] PublicKeyInfo { get; }

    /// <summary>Big-endian, as a CRL lists it.</summary>
    public byte[] SerialNumber { get; }

    public bool IsSelfIssued { get; }

    public ReadOnlyMemory<byte> SignedPart { get; }

    public ReadOnlyMemory<byte> SignatureAlgorithm { get; }

    public byte[] Signature { get; }

    public bool HasP384Key => _ecPublicKeyInfo is not null;

    /// <summary>AMD's VCEK/VLEK extensions; null (with <see cref="ExtensionsError"/>) when absent or malformed, as for an ASK or ARK.</summary>
    public SnpKeyCertificateExtensions? Extensions { get; }

    public string? ExtensionsError { get; }

    /// <summary>Verifies an IEEE P1363 ECDSA signature over a SHA-384 hash with this certificate's P-384 key.</summary>
    public bool VerifyHash(ReadOnlySpan<byte> hash, ReadOnlySpan<byte> signatureP1363)
    {
        if (_ecPublicKeyInfo is null)
        {
            return false;
        }

        // A key object per concurrent caller: the BCL does not promise that one ECDsa is safe to share.
        if (!_keys.TryTake(out var key))
        {
            key = ECDsa.Create();
            key.ImportSubjectPublicKeyInfo(_ecPublicKeyInfo, out _);
        }

        try
        {
            return key.VerifyHash(hash, signatureP1363, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        finally
        {
            _keys.Add(key);
        }
    }

    public bool IsValidAt(DateTimeOffset time) => time >= NotBefore && time <= NotAfter;

    /// <summary>
    /// The certificate's ECDSA key, or null when it has none or it cannot be imported (a curve the crypto library does
    /// not know): a supplied certificate is untrusted input, so such a key fails the checks that need it rather than throwing.
    /// </summary>
    private static ECDsa? ReadEcdsaKey(X509Certificate2 certificate)
    {
        try
        {
            return certificate.GetECDsaPublicKey();
        }
        catch (Exception e) when (e is CryptographicException or PlatformNotSupportedException)
        {
            return null;
        }
    }

    private static bool IsP384(ECDsa key)
    {
        // A key on explicit curve parameters (from a supplied certificate) has no OID: it is not P-384, not a crash.
        var curve = key.ExportParameters(false).Curve;
        return curve.IsNamed
            && (curve.Oid?.Value == P384Oid || curve.Oid?.FriendlyName is "nistP384" or "ECDSA_P384" or "secp384r1");
    }

    private static (SnpKeyCertificateExtensions?, string?) ReadExtensions(X509Certificate2 certificate)
    {
        try
        {
            return (SnpKeyCertificateExtensions.Parse(certificate), null);
        }
        catch (EvidenceFormatException e)
        {
            return (null, e.Message);
        }
    }
}
