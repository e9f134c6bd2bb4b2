using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Identity;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Fuzz;

/// <summary>
/// The X.509 pieces that arrive with evidence or collateral: CRLs (DER and PEM), the PEM PCK chain inside a quote,
/// Intel's SGX extension of the PCK certificate, and Morphisms' attested-identity extension of function certificates.
/// </summary>
public sealed class CertificateFuzzTests
{
    private static readonly DateTimeOffset IcelakeTime = new(2025, 8, 15, 5, 45, 0, TimeSpan.Zero);

    [VectorFact]
    public void Real_crls_parse_or_are_refused_as_malformed()
    {
        var platformCa = X509CertificateLoader.LoadCertificate(TestVectors.Read("roots", "intel_sgx_pck_platform_ca.der"));
        var root = X509CertificateLoader.LoadCertificate(TestVectors.Read("roots", "intel_sgx_root_ca.der"));
        var pckCrl = TestVectors.Read("sgx", "automata_pck_platform_crl_20250815.der");
        FuzzSeed[] seeds =
        [
            new("automata PCK platform CRL", pckCrl),
            new("automata PCK platform CRL, PEM", Encoding.ASCII.GetBytes(PemEncoding.WriteString("X509 CRL", pckCrl))),
            new("dcap-rs root CA CRL", TestVectors.Read("sgx", "dcaprs_root_ca_crl_20240320.der")),
            new("go-tdx-guest PCK platform CRL", TestVectors.Read("tdx", "gotdxguest_pck_platform_crl_20230608.der")),
        ];
        Fuzzer.Run("CertificateRevocationList.Parse", seed: 0xC41, iterations: 2500, seeds,
            (rng, seed) => seed.Data[0] == '-' ? Mutations.Pem(rng, seed) : Mutations.Der(rng, seed),
            (seed, bytes) => ReadCrl(bytes, seed.Name.Contains("root", StringComparison.Ordinal) ? root : platformCa, platformCa),
            typeof(EvidenceFormatException));
    }

    /// <summary>The PEM chain of certification data type 5, parsed and checked as a quote's verifier does.</summary>
    [VectorFact]
    public void Pck_chain_pem_is_verified_or_refused_as_malformed()
    {
        var sgx = DcapQuote.Parse(TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin"));
        var tdx = DcapQuote.Parse(TestVectors.Read("tdx", "trustee_emr_90c06f000000_v5_quote.bin"));
        FuzzSeed[] seeds =
        [
            new("SGX icelake PCK chain", sgx.Signature.CertificationData.Data.ToArray()),
            new("TDX EMR PCK chain", tdx.Signature.CertificationData.Data.ToArray()),
        ];
        // The verifier parses the chain (PckCertificateChainPem.Parse) and turns its format errors into failed checks.
        Fuzzer.Run("PckChainVerifier.Verify", seed: 0xC42, iterations: 800, seeds, Mutations.Pem,
            bytes => _ = PckChainVerifier.Verify(new CertificationData(5, bytes), TrustAnchors.Vendor, IcelakeTime, new CheckLog()).ReachesTrustedRoot,
            typeof(EvidenceFormatException));
    }

    [VectorFact]
    public void Pck_sgx_extension_parses_or_is_refused_as_malformed()
    {
        FuzzSeed[] seeds = new[] { "sgx/automata_icelake_00606a000000_v3_quote.bin", "tdx/trustee_gnr_00a06d080000_v4_quote.bin" }
            .Select(path =>
            {
                var quote = DcapQuote.Parse(TestVectors.Read(path.Split('/')));
                var leaf = PckCertificateChainPem.Parse(quote.Signature.CertificationData.Data.Span)[0];
                return new FuzzSeed(path, leaf.Extensions[PckExtensions.Oid]!.RawData);
            })
            .ToArray();
        Fuzzer.Run("PckExtensions.Parse", seed: 0xC43, iterations: 3000, seeds, Mutations.Der, bytes =>
        {
            var extensions = PckExtensions.Parse(bytes);
            _ = (extensions.FmspcHex, extensions.SgxType, extensions.Configuration, extensions.PlatformInstanceId);
        }, typeof(EvidenceFormatException));
    }

    /// <summary>A function certificate's identity extension is read by every client that connects (documented: CryptographicException).</summary>
    [Fact]
    public void Attested_identity_extension_decodes_or_is_refused_as_malformed()
    {
        var measurement = SHA384.HashData("fuzz"u8);
        FuzzSeed[] seeds =
        [
            new("snp", new AttestedIdentityExtension("snp", measurement, "hello", 7, SHA256.HashData(measurement), false).Encode()),
            new("sgx simulated", new AttestedIdentityExtension("sgx", SHA256.HashData("fuzz"u8), "signer-2", int.MaxValue, SHA256.HashData(measurement), true).Encode()),
        ];
        Fuzzer.Run("AttestedIdentityExtension.Decode", seed: 0xC44, iterations: 2000, seeds, Mutations.Der, bytes =>
        {
            var identity = AttestedIdentityExtension.Decode(bytes);
            _ = (identity.Tee.Length, identity.Function.Length, identity.Measurement.Length);
        }, typeof(CryptographicException));
    }

    /// <summary>Everything a revocation check reads of a CRL: its signature by <paramref name="issuer"/>, dates, entries.</summary>
    internal static void ReadCrl(byte[] bytes, X509Certificate2 issuer, X509Certificate2 subject)
    {
        var crl = CertificateRevocationList.Parse(bytes);
        _ = (crl.VerifySignature(issuer), crl.IsRevoked(subject), crl.IsCurrentAt(DateTimeOffset.UtcNow), crl.RevokedCount, crl.Issuer.Name);
    }
}
