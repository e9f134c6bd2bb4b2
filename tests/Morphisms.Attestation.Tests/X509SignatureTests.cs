using System.Formats.Asn1;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify;

namespace Morphisms.Attestation.Tests;

/// <summary>
/// The AlgorithmIdentifier comes from the certificate or CRL under verification, so whatever its
/// RSASSA-PSS parameters say, <see cref="X509Signature.Verify"/> answers true or false, never throws.
/// </summary>
public class X509SignatureTests
{
    private const string Sha256 = "2.16.840.1.101.3.4.2.1";
    private const string Sha384 = "2.16.840.1.101.3.4.2.2";
    private const string Mgf1 = "1.2.840.113549.1.1.8";

    private static readonly byte[] Data = "to be signed"u8.ToArray();

    private static readonly Lazy<(X509Certificate2 Issuer, byte[] Signature)> Signed = new(() =>
    {
        using var key = RSA.Create(2048);
        var issuer = new CertificateRequest("CN=PSS issuer", key, HashAlgorithmName.SHA384, RSASignaturePadding.Pss)
            .CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(100));
        return (X509CertificateLoader.LoadCertificate(issuer.RawData), key.SignData(Data, HashAlgorithmName.SHA384, RSASignaturePadding.Pss));
    });

    /// <summary>Named variants of SHA-384 PSS parameters, each written as the fields of RSASSA-PSS-params.</summary>
    public static TheoryData<string> Malformed() =>
    [
        "salt 2^40", "salt 2^64", "salt -48", "salt as OCTET STRING", "universal INTEGER field", "application-tagged salt",
        "fields out of order", "field repeated", "field [4]", "trailer 2", "trailer 2^40", "mgf1 with SHA-1", "mgf1 absent",
        "mask generator not mgf1", "hash SHA-1", "hash with junk parameters", "trailing data in a field", "trailing data after the parameters",
    ];

    [Fact]
    public void Pss_with_sha384_parameters_verifies()
    {
        var (issuer, signature) = Signed.Value;

        Assert.True(X509Signature.Verify(Data, signature, Pss(Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); })), issuer));
        Assert.True(X509Signature.Verify(Data, signature, Pss(Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); Trailer(w, 1); })), issuer));
        Assert.False(X509Signature.Verify("other data"u8, signature, Pss(Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); })), issuer));
    }

    [Theory]
    [InlineData("Milan")]
    [InlineData("Genoa")]
    [InlineData("Turin")]
    public void Amds_own_pss_encoding_is_accepted(string product)
    {
        // The embedded ASK and ASVK carry AMD's real RSASSA-PSS parameters (SHA-384, MGF1-SHA-384, salt 48).
        var roots = TrustAnchors.Vendor.FindAmdProduct(product)!;
        foreach (var certificate in new[] { roots.Ask, roots.Asvk! })
        {
            var reader = new AsnReader(certificate.RawData, AsnEncodingRules.DER).ReadSequence();
            var tbs = reader.ReadEncodedValue();
            var algorithm = reader.ReadEncodedValue();
            var signature = reader.ReadBitString(out _);

            Assert.True(X509Signature.Verify(tbs.Span, signature, algorithm, roots.Ark), certificate.Subject);
        }
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Malformed_pss_parameters_are_an_invalid_signature_not_an_exception(string variant)
    {
        var (issuer, signature) = Signed.Value;
        var sha384 = Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); });
        var algorithm = variant == "trailing data after the parameters" ? Pss(sha384, after: [0x05, 0x00]) : Pss(variant switch
        {
            "salt 2^40" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, BigInteger.One << 40); }),
            "salt 2^64" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, BigInteger.One << 64); }),
            "salt -48" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, -48); }),
            "salt as OCTET STRING" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Explicit(w, 2, x => x.WriteOctetString([48])); }),
            "universal INTEGER field" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); w.WriteInteger(48); }),
            "application-tagged salt" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Explicit(w, new Asn1Tag(TagClass.Application, 2, true), x => x.WriteInteger(48)); }),
            "fields out of order" => Params(w => { MaskGen(w, Sha384); Hash(w, 0, Sha384); Salt(w, 48); }),
            "field repeated" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); Salt(w, 48); }),
            "field [4]" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); Explicit(w, 4, x => x.WriteNull()); }),
            "trailer 2" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); Trailer(w, 2); }),
            "trailer 2^40" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, 48); Explicit(w, 3, x => x.WriteInteger(BigInteger.One << 40)); }),
            "mgf1 with SHA-1" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, "1.3.14.3.2.26"); Salt(w, 48); }),
            "mgf1 absent" => Params(w => { Hash(w, 0, Sha384); Salt(w, 48); }),
            "mask generator not mgf1" => Params(w => { Hash(w, 0, Sha384); Explicit(w, 1, x => AlgorithmId(x, Sha384)); Salt(w, 48); }),
            "hash SHA-1" => Params(w => { Hash(w, 0, "1.3.14.3.2.26"); MaskGen(w, "1.3.14.3.2.26"); Salt(w, 20); }),
            "hash with junk parameters" => Params(w => { Explicit(w, 0, x => { x.PushSequence(); x.WriteObjectIdentifier(Sha384); x.WriteInteger(1); x.PopSequence(); }); MaskGen(w, Sha384); Salt(w, 48); }),
            "trailing data in a field" => Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Explicit(w, 2, x => { x.WriteInteger(48); x.WriteNull(); }); }),
            _ => throw new ArgumentOutOfRangeException(nameof(variant)),
        });

        Assert.False(X509Signature.Verify(Data, signature, algorithm, issuer));
    }

    [Fact]
    public void Pss_parameters_for_an_ecdsa_issuer_are_an_invalid_signature()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issuer = new CertificateRequest("CN=EC issuer", key, HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(100));

        Assert.False(X509Signature.Verify(Data, new byte[64], Pss(Params(w => { Hash(w, 0, Sha256); MaskGen(w, Sha256); Salt(w, BigInteger.One << 40); })), issuer));
    }

    /// <summary>SEQUENCE { id-RSASSA-PSS, <paramref name="parameters"/>, <paramref name="after"/> } (DER wants nothing after).</summary>
    internal static byte[] Pss(byte[] parameters, byte[]? after = null)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.PushSequence();
        writer.WriteObjectIdentifier("1.2.840.113549.1.1.10");
        writer.WriteEncodedValue(parameters);
        if (after is not null)
        {
            writer.WriteEncodedValue(after);
        }

        writer.PopSequence();
        return writer.Encode();
    }

    /// <summary>RSASSA-PSS-params for SHA-384 with a salt of 2^40 bytes: what a forged AMD-style certificate would carry.</summary>
    internal static byte[] HugeSaltSha384() =>
        Pss(Params(w => { Hash(w, 0, Sha384); MaskGen(w, Sha384); Salt(w, BigInteger.One << 40); }));

    private static byte[] Params(Action<AsnWriter> fields)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.PushSequence();
        fields(writer);
        writer.PopSequence();
        return writer.Encode();
    }

    private static void Hash(AsnWriter writer, int tag, string oid) => Explicit(writer, tag, w => AlgorithmId(w, oid));

    private static void MaskGen(AsnWriter writer, string hashOid) =>
        Explicit(writer, 1, w =>
        {
            w.PushSequence();
            w.WriteObjectIdentifier(Mgf1);
            AlgorithmId(w, hashOid);
            w.PopSequence();
        });

    private static void Salt(AsnWriter writer, BigInteger value) => Explicit(writer, 2, w => w.WriteInteger(value));

    private static void Trailer(AsnWriter writer, int value) => Explicit(writer, 3, w => w.WriteInteger(value));

    private static void AlgorithmId(AsnWriter writer, string oid)
    {
        writer.PushSequence();
        writer.WriteObjectIdentifier(oid);
        writer.WriteNull();
        writer.PopSequence();
    }

    private static void Explicit(AsnWriter writer, int tag, Action<AsnWriter> content) =>
        Explicit(writer, new Asn1Tag(TagClass.ContextSpecific, tag, true), content);

    private static void Explicit(AsnWriter writer, Asn1Tag tag, Action<AsnWriter> content)
    {
        writer.PushSequence(tag);
        content(writer);
        writer.PopSequence(tag);
    }
}
