using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Verify;

/// <summary>
/// A parsed X.509 CRL (RFC 5280). .NET can build CRLs but has no type that reads one and checks
/// its signature, which AMD's and Intel's revocation checks both need.
/// </summary>
public sealed class CertificateRevocationList
{
    private readonly HashSet<BigInteger> _revoked;
    private readonly ReadOnlyMemory<byte> _tbs;
    private readonly ReadOnlyMemory<byte> _algorithm;
    private readonly byte[] _signature;

    private CertificateRevocationList(byte[] der, ReadOnlyMemory<byte> tbs, ReadOnlyMemory<byte> algorithm, byte[] signature,
        X500DistinguishedName issuer, DateTimeOffset thisUpdate, DateTimeOffset? nextUpdate, HashSet<BigInteger> revoked)
    {
        RawData = der;
        _tbs = tbs;
        _algorithm = algorithm;
        _signature = signature;
        Issuer = issuer;
        ThisUpdate = thisUpdate;
        NextUpdate = nextUpdate;
        _revoked = revoked;
    }

    /// <summary>The DER encoding.</summary>
    public byte[] RawData { get; }

    /// <summary>The CRL issuer's name.</summary>
    public X500DistinguishedName Issuer { get; }

    /// <summary>When the CRL was issued.</summary>
    public DateTimeOffset ThisUpdate { get; }

    /// <summary>When the next CRL is due; a CRL past this time is stale.</summary>
    public DateTimeOffset? NextUpdate { get; }

    /// <summary>How many serial numbers the CRL lists.</summary>
    public int RevokedCount => _revoked.Count;

    /// <summary>Parses a CRL in DER or PEM (<c>-----BEGIN X509 CRL-----</c>) form.</summary>
    /// <exception cref="EvidenceFormatException">The bytes are not a CRL.</exception>
    public static CertificateRevocationList Parse(byte[] derOrPem)
    {
        var der = derOrPem;
        if (derOrPem.Length > 0 && derOrPem[0] == (byte)'-')
        {
            // The bytes come with the evidence: "-" alone must read as a bad CRL, not PemEncoding's ArgumentException.
            var text = System.Text.Encoding.ASCII.GetString(derOrPem);
            if (!System.Security.Cryptography.PemEncoding.TryFind(text, out var fields))
            {
                throw new EvidenceFormatException("crl", "starts with '-' but holds no PEM block");
            }

            der = Convert.FromBase64String(text[fields.Base64Data]);
        }

        try
        {
            return ParseDer(der);
        }
        catch (Exception e) when (e is AsnContentException or ArgumentException or InvalidOperationException)
        {
            throw new EvidenceFormatException("crl", $"not a DER X.509 CRL ({e.Message})");
        }
    }

    /// <summary>True when the CRL's signature verifies with <paramref name="issuer"/>'s key and the names match.</summary>
    public bool VerifySignature(X509Certificate2 issuer) =>
        issuer.SubjectName.RawData.AsSpan().SequenceEqual(Issuer.RawData)
        && X509Signature.Verify(_tbs.Span, _signature, _algorithm, issuer);

    /// <summary>True when the given serial number (big-endian, as in the certificate) is listed.</summary>
    public bool IsRevoked(ReadOnlySpan<byte> serialBigEndian) =>
        _revoked.Contains(new BigInteger(serialBigEndian, isUnsigned: false, isBigEndian: true));

    /// <summary>True when <paramref name="certificate"/>'s serial number is listed.</summary>
    public bool IsRevoked(X509Certificate2 certificate) => IsRevoked(certificate.GetSerialNumber().Reverse().ToArray());

    /// <summary>True when <paramref name="time"/> lies in [ThisUpdate, NextUpdate].</summary>
    public bool IsCurrentAt(DateTimeOffset time) => time >= ThisUpdate && (NextUpdate is null || time <= NextUpdate);

    private static CertificateRevocationList ParseDer(byte[] der)
    {
        var outer = new AsnReader(der, AsnEncodingRules.DER);
        var certList = outer.ReadSequence();
        outer.ThrowIfNotEmpty();

        var tbs = certList.ReadEncodedValue();
        var algorithm = certList.ReadEncodedValue();
        var signature = certList.ReadBitString(out _);
        certList.ThrowIfNotEmpty();

        var tbsReader = new AsnReader(tbs, AsnEncodingRules.DER).ReadSequence();
        if (tbsReader.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
        {
            tbsReader.ReadInteger();
        }

        tbsReader.ReadEncodedValue(); // inner signature algorithm, must equal the outer one
        var issuer = ReadName(tbsReader.ReadEncodedValue().Span);
        var thisUpdate = ReadTime(tbsReader);
        DateTimeOffset? nextUpdate = null;
        if (tbsReader.HasData && IsTime(tbsReader.PeekTag()))
        {
            nextUpdate = ReadTime(tbsReader);
        }

        var revoked = new HashSet<BigInteger>();
        if (tbsReader.HasData && tbsReader.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
        {
            var entries = tbsReader.ReadSequence();
            while (entries.HasData)
            {
                var entry = entries.ReadSequence();
                revoked.Add(entry.ReadInteger());
            }
        }

        return new CertificateRevocationList(der, tbs, algorithm, signature, issuer, thisUpdate, nextUpdate, revoked);
    }

    /// <summary>
    /// Decodes the issuer now. <see cref="X500DistinguishedName"/> only keeps the bytes and decodes them when read: on
    /// Linux its <c>Name</c> of a malformed name is an empty string and enumerating its RDNs throws
    /// <see cref="CryptographicException"/>, so a CRL whose issuer is not a Name (an INTEGER, say) parsed, and whoever read
    /// the name later (the verifiers' failure messages, the collateral catalog's filing) got "" or an exception that is
    /// not a format error. Refused here, it is one, named.
    /// </summary>
    private static X500DistinguishedName ReadName(ReadOnlySpan<byte> der)
    {
        try
        {
            var name = new X500DistinguishedName(der);
            _ = name.EnumerateRelativeDistinguishedNames().Count();
            return name;
        }
        catch (CryptographicException e)
        {
            throw new EvidenceFormatException("crl", $"the issuer is not an X.500 name ({e.Message})");
        }
    }

    private static bool IsTime(Asn1Tag tag) =>
        tag.HasSameClassAndValue(Asn1Tag.UtcTime) || tag.HasSameClassAndValue(Asn1Tag.GeneralizedTime);

    private static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();
}
