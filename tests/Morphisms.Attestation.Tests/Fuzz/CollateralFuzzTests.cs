using System.Text;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Tests.Dcap;
using Morphisms.Attestation.Tests.Simulated;
using Morphisms.Attestation.Verify;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Fuzz;

/// <summary>
/// Intel collateral reaches the verifier from PCS, from offline files and from the instance itself (a login's
/// endorsements are a collateral bundle). Its JSON, mutated — fields removed, retyped, made huge or duplicated, dates
/// and hex bent, strings holding JSON fuzzed inside — must parse or be refused with <see cref="EvidenceFormatException"/>.
/// </summary>
public sealed class CollateralFuzzTests(SimulatedFixture fixture) : IClassFixture<SimulatedFixture>
{
    /// <summary>Signed TCB info (SGX v2 and v3, TDX v3 with module identities) and QE / TD QE identities.</summary>
    [VectorFact]
    public void Intel_signed_documents_parse_or_are_refused_as_malformed()
    {
        string[] tcbInfos =
        [
            "sgx/automata_sgx_tcbinfo_v3_00606a000000_20250815.json", "sgx/dcaprs_sgx_tcbinfo_v2_00606a000000_20250213.json",
            "tdx/automata_tdx_tcbinfo_90c06f000000_20250605.json", "tdx/trustee_tdx_tcbinfo_00a06d080000_20251027.json",
        ];
        string[] identities = ["sgx/automata_sgx_qe_identity_20250815.json", "tdx/trustee_td_qe_identity_20251028.json"];
        var seeds = tcbInfos.Concat(identities).Select(path => new FuzzSeed(path, TestVectors.Read(path.Split('/')))).ToList();

        var stats = Fuzzer.Run("IntelCollateralDocument.Parse", seed: 0xC011, iterations: 1500, seeds, Mutations.Json, (seed, bytes) =>
        {
            if (seed.Name.Contains("tcbinfo", StringComparison.Ordinal))
            {
                var tcb = TcbInfo.Parse(IntelCollateralDocument.Parse(bytes, CollateralDocumentKind.TcbInfo).Body);
                _ = (tcb.FmspcHex, tcb.TcbLevels.Count, tcb.TdxModule, tcb.TdxModuleIdentities.Count, tcb.IsForFmspc("00606a000000"));
            }
            else
            {
                var identity = EnclaveIdentity.Parse(IntelCollateralDocument.Parse(bytes, CollateralDocumentKind.EnclaveIdentity).Body);
                _ = (identity.Tee, identity.TcbLevels.Count, identity.MiscSelect);
            }
        }, typeof(EvidenceFormatException));
        Assert.True(stats.Accepted > 100, $"only {stats.Accepted} mutated documents parsed");
    }

    /// <summary>
    /// The three bundle layouts (dcap-qvl's strings and hex, dcap-rs's embedded objects and PEM CRLs, this library's
    /// own), parsed and then read as the collateral verifier reads them: both documents, both CRLs, the signing chain.
    /// </summary>
    [VectorFact]
    public void Collateral_bundles_parse_or_are_refused_as_malformed()
    {
        string[] bundles =
        [
            "sgx/phala_rocketlake_00a067110000_collateral_20250619.json",
            "sgx/dcaprs_rocketlake_00a067110000_full_collateral_20240826.json",
            "tdx/phala_emr_90c06f000000_collateral_20260218.json",
        ];
        var seeds = bundles.Select(path => new FuzzSeed(path, TestVectors.Read(path.Split('/'))))
            .Append(new FuzzSeed("simulated, this library's layout", Encoding.UTF8.GetBytes(CollateralBundle.ToJson(fixture.Authority.CreateSgxCollateral(DateTimeOffset.UtcNow)))))
            .ToList();
        Fuzzer.Run("CollateralBundle.Parse", seed: 0xC012, iterations: 600, seeds, Mutations.Json, bytes => ReadBundle(bytes), typeof(EvidenceFormatException));
    }

    /// <summary>A mutated bundle sent with a real quote goes through the whole collateral verifier: failed checks, never a crash.</summary>
    [VectorFact]
    public void Mutated_bundle_is_verified_or_refused_as_malformed()
    {
        var row = DcapEndToEndCases.All.Single(c => c.Name == "sgx-rocketlake-phala");
        var quote = TestVectors.Read(row.QuoteDir, row.QuoteFile);
        var seeds = new[] { new FuzzSeed(row.Bundle!, TestVectors.Read(row.Bundle!.Split('/'))) };
        Fuzzer.Run("DcapVerifier.VerifyAsync (bundle)", seed: 0xC013, iterations: 300, seeds, Mutations.Json, bytes =>
        {
            var options = new DcapVerifyOptions { Time = new FakeTimeProvider(row.At), Collateral = CollateralBundle.Parse(bytes) };
            _ = DcapVerifier.VerifyAsync(quote, options).AsTask().GetAwaiter().GetResult().ToResult();
        }, typeof(EvidenceFormatException));
    }

    private static void ReadBundle(byte[] bytes)
    {
        var collateral = CollateralBundle.Parse(bytes);
        if (collateral.TcbInfo is { } tcb)
        {
            _ = TcbInfo.Parse(tcb.Body).TcbLevels.Count;
        }

        if (collateral.QeIdentity is { } qe)
        {
            _ = EnclaveIdentity.Parse(qe.Body).TcbLevels.Count;
        }

        foreach (var crl in new[] { collateral.PckCrl, collateral.RootCaCrl }.OfType<byte[]>())
        {
            _ = CertificateRevocationList.Parse(crl).RevokedCount;
        }

        _ = collateral.TcbSigningCertificates.Select(c => (c.NotBefore, c.NotAfter, c.Subject)).ToList();
    }
}
