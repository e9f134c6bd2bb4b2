using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Tests.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Dcap;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Fuzz;

/// <summary>
/// The crashes the fuzz tests found, each kept as a named case: before the fixes these threw InvalidOperationException or
/// CryptographicException from inside a verifier, which the KMS answered with a 500 instead of a 400 naming the input.
/// </summary>
public sealed class FuzzRegressionTests
{
    private static readonly DateTimeOffset NotBefore = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Found by Intel_signed_documents… and Collateral_bundles…: JsonDocument checks a string's UTF-8 only when it is read.</summary>
    [Fact]
    public void Collateral_json_with_invalid_utf8_inside_a_string_is_a_format_error()
    {
        var tcbInfo = SyntheticCollateral.TcbInfoJson(NotBefore, "SGX", TcbStatus.UpToDate);
        var at = Encoding.ASCII.GetString(tcbInfo).IndexOf("UpToDate", StringComparison.Ordinal);
        tcbInfo[at] = 0xFF;

        var e = Assert.Throws<EvidenceFormatException>(() => TcbInfo.Parse(tcbInfo));
        Assert.Equal("tcbInfo", e.Field);
        Assert.Contains("UTF-8", e.Message, StringComparison.Ordinal);

        var bundle = Encoding.UTF8.GetBytes($$"""{"tcb_info":"{}","tcb_info_signature":"{{new string('0', 128)}}","pck_crl":"30X"}""");
        bundle[^4] = 0xC3;
        Assert.Contains("UTF-8", Assert.Throws<EvidenceFormatException>(() => CollateralBundle.Parse(bundle)).Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Found by review: a VCEK whose TBSCertificate length is not minimally encoded (BER, not DER) — OpenSSL loads it, and
    /// the SNP verifier re-reads the signed part as DER and threw AsnContentException (a 500 at the KMS); such a certificate
    /// is now refused where it is loaded.
    /// </summary>
    [VectorFact]
    public void Certificate_with_a_non_minimal_tbs_length_is_refused_where_it_is_loaded()
    {
        var der = TestVectors.Read("snp", "trustee_milan_vcek.der");
        Assert.Equal([0x30, 0x82, 0x30, 0x82], new[] { der[0], der[1], der[4], der[5] });
        var ber = new byte[der.Length + 1];
        var outer = ((der[2] << 8) | der[3]) + 1;
        (ber[0], ber[1], ber[2], ber[3]) = (0x30, 0x82, (byte)(outer >> 8), (byte)outer);
        (ber[4], ber[5], ber[6]) = (0x30, 0x83, 0x00);
        der.AsSpan(6).CopyTo(ber.AsSpan(7));

        Assert.Contains("not DER", Assert.Throws<EvidenceFormatException>(() => SnpEndorsements.Load(ber)).Message, StringComparison.Ordinal);
        var pem = Encoding.ASCII.GetBytes(PemEncoding.WriteString("CERTIFICATE", ber) + "\n");
        Assert.Throws<EvidenceFormatException>(() => PckCertificateChainPem.Parse(pem));
    }

    /// <summary>
    /// Found by Mutated_real_quote… (sgx-rocketlake-dcaprs, iteration 338) and the VCEK fuzz test: a certificate whose
    /// notBefore reads month 13 loads, and .NET throws only when the date is first read — inside the chain verifier.
    /// </summary>
    [Fact]
    public void Certificate_whose_validity_does_not_decode_is_refused_where_it_is_parsed()
    {
        var der = WithMonth13(SelfSigned("CN=Morphisms fuzz regression"));
        using var loaded = X509CertificateLoader.LoadCertificate(der);
        Assert.Throws<CryptographicException>(() => loaded.NotBefore); // the .NET behaviour the fix guards against
        var pem = Encoding.ASCII.GetBytes(PemEncoding.WriteString("CERTIFICATE", der) + "\n");

        Assert.Contains("validity", Assert.Throws<EvidenceFormatException>(() => PckCertificateChainPem.Parse(pem)).Message, StringComparison.Ordinal);
        Assert.Contains("validity", Assert.Throws<EvidenceFormatException>(() => SnpEndorsements.Load(der)).Message, StringComparison.Ordinal);
        Assert.Throws<EvidenceFormatException>(() => SnpEndorsements.Load(pem)); // ImportFromPem already reads the dates
        Assert.Contains("validity", Assert.Throws<EvidenceFormatException>(() => CollateralEncoding.ParseCertificateFile(der, "tcb_signing_chain")).Message, StringComparison.Ordinal);
        Assert.Contains("validity", Assert.Throws<EvidenceFormatException>(() => CollateralEncoding.ParsePemCertificates(Encoding.ASCII.GetString(pem), "tcb_signing_chain")).Message, StringComparison.Ordinal);

        // The quote verifier reports it as a failed chain check.
        var log = new CheckLog();
        var chain = PckChainVerifier.Verify(new CertificationData(5, pem), TrustAnchors.Vendor, DateTimeOffset.UtcNow, log);
        Assert.False(chain.ReachesTrustedRoot);
        Assert.Contains(log.Failures, f => f.Check == PckChainVerifier.Check && f.Reason.Contains("validity", StringComparison.Ordinal));
    }

    /// <summary>Found by Mutated_real_quote… (tdx-spr-trustee, iteration 202): a basicConstraints extension that does not decode.</summary>
    [Fact]
    public void Basic_constraints_that_do_not_decode_make_no_certificate_authority()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Morphisms fuzz regression CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509Extension("2.5.29.19", [0x0C, 0x00], critical: true));
        using var ca = request.CreateSelfSigned(NotBefore, NotBefore.AddYears(10));
        Assert.Throws<CryptographicException>(() => ca.Extensions.OfType<X509BasicConstraintsExtension>().First().CertificateAuthority);

        Assert.False(CertificateSignature.IsCertificateAuthority(ca));
    }

    private static byte[] SelfSigned(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var certificate = new CertificateRequest(subject, key, HashAlgorithmName.SHA256).CreateSelfSigned(NotBefore, NotBefore.AddYears(10));
        return certificate.RawData;
    }

    /// <summary>The certificate with the month of its notBefore (UTCTime YYMMDDhhmmssZ) set to 13.</summary>
    private static byte[] WithMonth13(byte[] der)
    {
        var at = der.AsSpan().IndexOf((ReadOnlySpan<byte>)[0x17, 0x0D]);
        Assert.True(at > 0, "no UTCTime in the certificate");
        der[at + 4] = (byte)'1';
        der[at + 5] = (byte)'3';
        return der;
    }
}
