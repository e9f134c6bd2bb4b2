using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Collateral;

public sealed class OfflineCollateralStoreTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("morphisms-collateral-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [VectorFact]
    public async Task A_directory_of_mixed_collateral_yields_the_newest_items_for_the_platform()
    {
        // The vectors' sgx/ directory mixes two Ice Lake dates, two Rocket Lake bundles, CRLs and quotes.
        var store = OfflineCollateralStore.Open(TestVectors.Path("sgx"));

        var icelake = await store.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "00606A000000", PckCaType.Platform));

        Assert.NotNull(icelake);
        Assert.Equal(Body("sgx/automata_sgx_tcbinfo_v3_00606a000000_20250815.json", CollateralDocumentKind.TcbInfo), icelake.TcbInfo!.Body);
        Assert.Equal(Body("sgx/automata_sgx_qe_identity_20250815.json", CollateralDocumentKind.EnclaveIdentity), icelake.QeIdentity!.Body);
        Assert.Equal(File.ReadAllBytes(CollateralVectors.Path("sgx/automata_pck_platform_crl_20250815.der")), icelake.PckCrl);
        Assert.Equal(new DateTimeOffset(2025, 3, 20, 11, 21, 57, TimeSpan.Zero), CertificateRevocationList.Parse(icelake.RootCaCrl!).ThisUpdate);
        var log = new CheckLog();
        CollateralVerifier.Verify(icelake, TeeType.Sgx, TrustAnchors.Vendor, new DateTimeOffset(2025, 8, 15, 5, 45, 0, TimeSpan.Zero), log);
        Assert.Empty(log.Failures);

        var rocketlake = await store.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "00a067110000", PckCaType.Processor));

        Assert.Equal(new DateTimeOffset(2025, 6, 19, 10, 56, 11, TimeSpan.Zero), TcbInfo.Parse(rocketlake!.TcbInfo!.Body).IssueDate);
        Assert.Contains("Processor", CertificateRevocationList.Parse(rocketlake.PckCrl!).Issuer.Name);
    }

    [VectorFact]
    public async Task A_directory_without_tcb_info_for_the_platform_leaves_it_missing()
    {
        var store = OfflineCollateralStore.Open(TestVectors.Path("sgx"));

        var tdx = await store.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Tdx, "00806F050000", PckCaType.Platform));
        var log = new CheckLog();
        CollateralVerifier.Verify(tdx!, TeeType.Tdx, TrustAnchors.Vendor, new DateTimeOffset(2025, 10, 20, 0, 0, 0, TimeSpan.Zero), log);

        Assert.Null(tdx!.TcbInfo);
        Assert.Null(tdx.QeIdentity);
        Assert.Contains(log.Failures, f => f.Reason == "collateral: TCB info missing");
        Assert.Contains(log.Failures, f => f.Reason == "collateral: QE identity missing");
    }

    [VectorFact]
    public async Task A_tdx_directory_picks_the_td_qe_identity_and_the_newest_tcb_info()
    {
        var store = OfflineCollateralStore.Open(TestVectors.Path("tdx"));

        var spr = await store.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Tdx, "00806f050000", PckCaType.Platform));

        Assert.Equal(Body("tdx/automata_tdx_tcbinfo_00806f050000_20251019.json", CollateralDocumentKind.TcbInfo), spr!.TcbInfo!.Body);
        // The newest TD QE identity and CRLs in tdx/ sit in the Phala 2026-02-18 bundle.
        var phala = CollateralBundle.Parse(File.ReadAllBytes(CollateralVectors.Path("tdx/phala_emr_90c06f000000_collateral_20260218.json")));
        Assert.Equal(phala.QeIdentity!.Body, spr.QeIdentity!.Body);
        Assert.Equal(phala.PckCrl, spr.PckCrl);
        Assert.Equal(phala.RootCaCrl, spr.RootCaCrl);
    }

    [VectorFact]
    public async Task A_hand_built_directory_with_renamed_files_and_foreign_json_works()
    {
        Copy("tdx/trustee_tdx_tcbinfo_00a06d080000_20251027.json", "gnr-tcb.json");
        Copy("tdx/trustee_td_qe_identity_20251028.json", "td-qe.json");
        Copy("tdx/automata_pck_platform_crl_20251013.der", "a.crl");
        Copy("sgx/automata_root_ca_crl_20250320.der", "b.der");
        Copy("roots/intel_sgx_tcb_signing_2025-2032.der", "signing.cer");
        Copy("tdx/trustee_gnr_00a06d080000_v4_quote.bin", "quote.bin");
        File.WriteAllText(Path.Combine(_temp, "notes.json"), "{\"note\":\"not collateral\"}");
        var store = OfflineCollateralStore.Open(_temp);

        var collateral = await store.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Tdx, "00A06D080000", PckCaType.Platform));
        var log = new CheckLog();
        var verified = CollateralVerifier.Verify(collateral!, TeeType.Tdx, TrustAnchors.Vendor, new DateTimeOffset(2025, 10, 28, 12, 0, 0, TimeSpan.Zero), log);

        Assert.Empty(log.Failures);
        Assert.Equal("00a06d080000", verified.TcbInfo!.FmspcHex);
        Assert.Contains(collateral!.TcbSigningCertificates, c => c.NotAfter.Year == 2032);
        Assert.Equal(_temp, collateral.Origin);
    }

    [Fact]
    public void A_malformed_collateral_file_names_the_file_and_the_field()
    {
        File.WriteAllText(Path.Combine(_temp, "tcb.json"), "{\"tcbInfo\":{\"version\":3},\"signature\":\"" + new string('0', 128) + "\"}");

        var e = Assert.Throws<EvidenceFormatException>(() => OfflineCollateralStore.Open(_temp));

        Assert.Contains("tcb.json", e.Message);
        Assert.Contains("tcbInfo.id: missing", e.Message);
    }

    [Fact]
    public void Invalid_json_in_the_directory_names_the_file()
    {
        File.WriteAllText(Path.Combine(_temp, "broken.json"), "{\"tcbInfo\":");

        var e = Assert.Throws<EvidenceFormatException>(() => OfflineCollateralStore.Open(_temp));

        Assert.Contains("broken.json: malformed JSON", e.Message);
    }

    [Fact]
    public void A_missing_path_is_reported()
    {
        Assert.Throws<FileNotFoundException>(() => OfflineCollateralStore.Open(Path.Combine(_temp, "nope")));
    }

    [VectorTheory]
    [MemberData(nameof(CollateralVectors.Names), MemberType = typeof(CollateralVectors))]
    public async Task Every_set_round_trips_through_our_bundle_format(string name)
    {
        var set = CollateralVectors.Get(name);
        var original = set.Load();
        var file = Path.Combine(_temp, "bundle.json");
        File.WriteAllText(file, CollateralBundle.ToJson(original));

        var reread = await OfflineCollateralStore.Open(file).GetDcapCollateralAsync(new DcapCollateralRequest(set.Tee, "000000000000", set.Ca));

        Assert.Equal(original.TcbInfo?.Body, reread!.TcbInfo?.Body);
        Assert.Equal(original.TcbInfo?.Signature, reread.TcbInfo?.Signature);
        Assert.Equal(original.QeIdentity?.Body, reread.QeIdentity?.Body);
        Assert.Equal(original.PckCrl, reread.PckCrl);
        Assert.Equal(original.RootCaCrl, reread.RootCaCrl);
        Assert.Equal(original.TcbSigningCertificates.Select(c => c.Thumbprint), reread.TcbSigningCertificates.Select(c => c.Thumbprint));
        var log = new CheckLog();
        CollateralVerifier.Verify(reread, set.Tee, TrustAnchors.Vendor, set.At, log);
        Assert.Equal(set.Missing.Count, log.Failures.Count);
    }

    [VectorFact]
    public async Task Our_bundle_accepts_base64_crls_pem_chains_and_whole_intel_documents()
    {
        var bundle = new JsonObject
        {
            ["format"] = CollateralBundle.FormatName,
            // The whole Intel document as a string: no separate signature needed.
            ["tcb_info"] = File.ReadAllText(CollateralVectors.Path("sgx/automata_sgx_tcbinfo_v3_00606a000000_20250815.json")),
            ["qe_identity"] = "__QE__",
            ["pck_crl"] = Convert.ToBase64String(File.ReadAllBytes(CollateralVectors.Path("sgx/automata_pck_platform_crl_20250815.der"))),
            ["root_ca_crl"] = Convert.ToBase64String(File.ReadAllBytes(CollateralVectors.Path("sgx/automata_root_ca_crl_20250320.der"))),
            ["tcb_signing_chain"] = File.ReadAllText(CollateralVectors.Path("roots/intel_sgx_tcb_signing_2018-2025.pem"))
                + File.ReadAllText(CollateralVectors.Path("roots/intel_sgx_root_ca.pem")),
        };
        var file = Path.Combine(_temp, "mine.json");
        // The whole Intel document embedded as an object, byte for byte (re-serialising could change the signed bytes).
        File.WriteAllText(file, bundle.ToJsonString().Replace("\"__QE__\"", File.ReadAllText(CollateralVectors.Path("sgx/automata_sgx_qe_identity_20250815.json")).Trim()));

        var collateral = await OfflineCollateralStore.Open(file).GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Sgx, "00606a000000", PckCaType.Platform));
        var log = new CheckLog();
        var verified = CollateralVerifier.Verify(collateral!, TeeType.Sgx, TrustAnchors.Vendor, new DateTimeOffset(2025, 8, 15, 5, 45, 0, TimeSpan.Zero), log);

        Assert.Empty(log.Failures);
        Assert.NotNull(verified.TcbInfo);
        Assert.NotNull(verified.QeIdentity);
        Assert.Equal(2, collateral!.TcbSigningCertificates.Count);
    }

    [VectorFact]
    public async Task A_single_intel_document_file_is_accepted_as_partial_collateral()
    {
        var store = OfflineCollateralStore.Open(CollateralVectors.Path("tdx/gotdxguest_tdx_tcbinfo_90c06f000000_20260201.json"));

        var collateral = await store.GetDcapCollateralAsync(new DcapCollateralRequest(TeeType.Tdx, "90c06f000000", PckCaType.Platform));

        Assert.NotNull(collateral!.TcbInfo);
        Assert.Null(collateral.QeIdentity);
        Assert.Null(collateral.PckCrl);
    }

    [Fact]
    public void A_json_file_that_is_not_collateral_is_refused()
    {
        var file = Path.Combine(_temp, "x.json");
        File.WriteAllText(file, "{\"hello\":1}");

        var e = Assert.Throws<EvidenceFormatException>(() => OfflineCollateralStore.Open(file));

        Assert.Contains("not a collateral bundle", e.Message);
    }

    [Fact]
    public void A_bundle_with_a_bad_crl_names_the_field()
    {
        var file = Path.Combine(_temp, "x.json");
        File.WriteAllText(file, "{\"pck_crl\":\"@@@\"}");

        var e = Assert.Throws<EvidenceFormatException>(() => OfflineCollateralStore.Open(file));

        Assert.Contains("pck_crl", e.Message);
    }

    private void Copy(string vector, string name) => File.Copy(CollateralVectors.Path(vector), Path.Combine(_temp, name));

    private static byte[] Body(string file, CollateralDocumentKind kind) =>
        IntelCollateralDocument.Parse(File.ReadAllBytes(CollateralVectors.Path(file)), kind).Body;
}
