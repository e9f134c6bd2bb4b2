using System.Text;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Verify;

namespace Morphisms.Attestation.Tests.Collateral;

public class CollateralParsingTests
{
    /// <summary>The README appendix's summary line of every plain Intel TCB info file.</summary>
    public static TheoryData<string, string?, int, string, string, string, int, int> TcbInfoFiles() => new()
    {
        { "sgx/automata_sgx_tcbinfo_v3_00606a000000_20250815.json", "SGX", 3, "00606a000000", "2025-08-15T05:08:18Z", "2025-09-14T05:08:18Z", 17, 11 },
        { "sgx/dcaprs_sgx_tcbinfo_v2_00606a000000_20250213.json", null, 2, "00606a000000", "2025-02-13T03:29:42Z", "2025-03-15T03:29:42Z", 17, 11 },
        { "tdx/automata_tdx_tcbinfo_00806f050000_20251019.json", "TDX", 3, "00806F050000", "2025-10-19T17:48:50Z", "2025-11-18T17:48:50Z", 17, 4 },
        { "tdx/automata_tdx_tcbinfo_90c06f000000_20250605.json", "TDX", 3, "90C06F000000", "2025-06-05T03:43:45Z", "2025-07-05T03:43:45Z", 17, 2 },
        { "tdx/dcaprs_tdx_tcbinfo_00806f050000_20240910.json", "TDX", 3, "00806f050000", "2024-09-10T06:45:50Z", "2024-10-10T06:45:50Z", 16, 3 },
        { "tdx/dcaprs_tdx_tcbinfo_00806f050000_20250213.json", "TDX", 3, "00806f050000", "2025-02-13T03:50:41Z", "2025-03-15T03:50:41Z", 17, 4 },
        { "tdx/gotdxguest_tdx_tcbinfo_50806f000000_20230618.json", "TDX", 3, "50806f000000", "2023-06-18T08:42:58Z", "2023-07-18T08:42:58Z", 15, 2 },
        { "tdx/gotdxguest_tdx_tcbinfo_90c06f000000_20260201.json", "TDX", 3, "90c06f000000", "2026-02-01T14:49:26Z", "2026-03-03T14:49:26Z", 18, 3 },
        { "tdx/trustee_tdx_tcbinfo_00a06d080000_20251027.json", "TDX", 3, "00A06D080000", "2025-10-27T13:07:17Z", "2025-11-26T13:07:17Z", 17, 2 },
    };

    /// <summary>The README appendix's summary line of every plain Intel enclave identity file.</summary>
    public static TheoryData<string, string, string, string, int, int> IdentityFiles() => new()
    {
        { "sgx/automata_sgx_qe_identity_20250815.json", "QE", "2025-08-15T04:36:46Z", "2025-09-14T04:36:46Z", 17, 6 },
        { "sgx/dcaprs_sgx_qe_identity_20250213.json", "QE", "2025-02-13T03:33:12Z", "2025-03-15T03:33:12Z", 17, 6 },
        { "tdx/automata_td_qe_identity_20250604.json", "TD_QE", "2025-06-04T09:40:18Z", "2025-07-04T09:40:18Z", 17, 1 },
        { "tdx/automata_td_qe_identity_20251013.json", "TD_QE", "2025-10-13T10:46:47Z", "2025-11-12T10:46:47Z", 17, 1 },
        { "tdx/dcaprs_td_qe_identity_20240910.json", "TD_QE", "2024-09-10T06:27:30Z", "2024-10-10T06:27:30Z", 16, 1 },
        { "tdx/dcaprs_td_qe_identity_20250213.json", "TD_QE", "2025-02-13T03:39:00Z", "2025-03-15T03:39:00Z", 17, 1 },
        { "tdx/gotdxguest_td_qe_identity_20230608.json", "TD_QE", "2023-06-08T07:24:59Z", "2023-07-08T07:24:59Z", 15, 1 },
        { "tdx/trustee_td_qe_identity_20251028.json", "TD_QE", "2025-10-28T06:45:09Z", "2025-11-27T06:45:09Z", 17, 1 },
    };

    [VectorTheory]
    [MemberData(nameof(TcbInfoFiles))]
    public void Every_tcb_info_file_parses_to_the_readme_values(string file, string? id, int version, string fmspc, string issue, string next, int evaluation, int levels)
    {
        var bytes = File.ReadAllBytes(CollateralVectors.Path(file));
        var signed = IntelCollateralDocument.Parse(bytes, CollateralDocumentKind.TcbInfo);

        var tcb = TcbInfo.Parse(signed.Body);

        Assert.Equal(id, tcb.Id);
        Assert.Equal(id == "TDX" ? TeeType.Tdx : TeeType.Sgx, tcb.Tee);
        Assert.Equal(version, tcb.Version);
        Assert.Equal(fmspc.ToLowerInvariant(), tcb.FmspcHex);
        Assert.True(tcb.IsForFmspc(fmspc.ToUpperInvariant()));
        Assert.Equal(DateTimeOffset.Parse(issue), tcb.IssueDate);
        Assert.Equal(DateTimeOffset.Parse(next), tcb.NextUpdate);
        Assert.Equal(evaluation, tcb.TcbEvaluationDataNumber);
        Assert.Equal(levels, tcb.TcbLevels.Count);
        Assert.All(tcb.TcbLevels, l => Assert.Equal(16, l.SgxTcbComponents.Length));
        Assert.All(tcb.TcbLevels, l => Assert.Equal(tcb.Tee == TeeType.Tdx, l.TdxTcbComponents is { Length: 16 }));
        Assert.Equal(tcb.Tee == TeeType.Tdx, tcb.TdxModule is not null);
    }

    [VectorTheory]
    [MemberData(nameof(IdentityFiles))]
    public void Every_identity_file_parses_to_the_readme_values(string file, string id, string issue, string next, int evaluation, int levels)
    {
        var signed = IntelCollateralDocument.Parse(File.ReadAllBytes(CollateralVectors.Path(file)), CollateralDocumentKind.EnclaveIdentity);

        var identity = EnclaveIdentity.Parse(signed.Body);

        Assert.Equal(id, identity.Id);
        Assert.Equal(id == "TD_QE" ? TeeType.Tdx : TeeType.Sgx, identity.Tee);
        Assert.Equal(DateTimeOffset.Parse(issue), identity.IssueDate);
        Assert.Equal(DateTimeOffset.Parse(next), identity.NextUpdate);
        Assert.Equal(evaluation, identity.TcbEvaluationDataNumber);
        Assert.Equal(levels, identity.TcbLevels.Count);
        Assert.Equal(0u, identity.MiscSelect);
        Assert.Equal(0xFFFFFFFFu, identity.MiscSelectMask);
        Assert.Equal("11000000000000000000000000000000", Hex.Of(identity.Attributes));
        Assert.Equal(id == "QE" ? 1 : 2, identity.IsvProdId);
        Assert.Equal(64, signed.Signature.Length);
    }

    [VectorTheory]
    [MemberData(nameof(TcbInfoFiles))]
    public void The_signed_body_is_the_exact_bytes_between_the_key_and_the_signature(string file, string? id, int version, string fmspc, string issue, string next, int evaluation, int levels)
    {
        _ = (id, version, fmspc, issue, next, evaluation, levels);
        var bytes = File.ReadAllBytes(CollateralVectors.Path(file));
        var text = Encoding.UTF8.GetString(bytes);
        var start = text.IndexOf("{\"tcbInfo\":", StringComparison.Ordinal) + "{\"tcbInfo\":".Length;
        var end = text.LastIndexOf(",\"signature\"", StringComparison.Ordinal);

        var signed = IntelCollateralDocument.Parse(bytes, CollateralDocumentKind.TcbInfo);

        Assert.Equal(Encoding.UTF8.GetBytes(text[start..end]), signed.Body);
    }

    [VectorFact]
    public void Version_2_tcb_info_reads_numbered_component_keys()
    {
        var signed = IntelCollateralDocument.Parse(File.ReadAllBytes(CollateralVectors.Path("sgx/dcaprs_sgx_tcbinfo_v2_00606a000000_20250213.json")), CollateralDocumentKind.TcbInfo);

        var tcb = TcbInfo.Parse(signed.Body);

        var first = tcb.TcbLevels[0];
        Assert.Equal([14, 14, 3, 3, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], first.SgxTcbComponents);
        Assert.Equal(13, first.PceSvn);
        Assert.Equal("SWHardeningNeeded", first.Status);
        Assert.Empty(first.AdvisoryIds);
        Assert.Null(first.TdxTcbComponents);
    }

    [VectorFact]
    public void Tdx_tcb_info_reads_module_identities_with_their_levels()
    {
        var signed = IntelCollateralDocument.Parse(File.ReadAllBytes(CollateralVectors.Path("tdx/gotdxguest_tdx_tcbinfo_90c06f000000_20260201.json")), CollateralDocumentKind.TcbInfo);

        var tcb = TcbInfo.Parse(signed.Body);

        Assert.Equal(new byte[48], tcb.TdxModule!.MrSigner);
        Assert.Equal(["TDX_03", "TDX_01"], tcb.TdxModuleIdentities.Select(m => m.Id));
        var tdx01 = tcb.TdxModuleIdentities[1];
        Assert.Equal([6, 4, 2], tdx01.TcbLevels.Select(l => (int)l.IsvSvn));
        Assert.Equal(["INTEL-SA-01036", "INTEL-SA-01099"], tdx01.TcbLevels[1].AdvisoryIds);
        Assert.Equal([5, 0, 3], tcb.TcbLevels[0].TdxTcbComponents![..3]);
    }

    [Theory]
    [InlineData("{\"tcbInfo\":{\"id\":\"SGX\"", "malformed JSON")]
    [InlineData("{\"tcbInfo\":{},\"signature\":\"00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\"}", "tcbInfo.version: missing")]
    [InlineData("{\"signature\":\"00\"}", "tcbInfo: missing")]
    [InlineData("{\"tcbInfo\":{\"a\":1}}", "signature: missing")]
    public void Malformed_documents_name_the_field(string json, string message)
    {
        var e = Assert.Throws<EvidenceFormatException>(() =>
        {
            var signed = IntelCollateralDocument.Parse(Encoding.UTF8.GetBytes(json), CollateralDocumentKind.TcbInfo);
            TcbInfo.Parse(signed.Body);
        });

        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("\"fmspc\":\"00906ED50000\"", "\"fmspc\":\"00906ED500\"", "tcbInfo.fmspc: expected 12 hex digits")]
    [InlineData("\"fmspc\":\"00906ED50000\"", "\"fmspc\":\"00906ED5000Z\"", "tcbInfo.fmspc: not a hexadecimal string")]
    [InlineData("\"version\":3", "\"version\":4", "tcbInfo.version: version 4 is not supported")]
    [InlineData("\"id\":\"SGX\"", "\"id\":\"SEV\"", "tcbInfo.id: 'SEV' is neither SGX nor TDX")]
    [InlineData("\"pcesvn\":13", "\"pcesvn\":\"13\"", "tcbInfo.tcbLevels[0].tcb.pcesvn: expected an integer")]
    [InlineData("\"pcesvn\":13", "\"pcesvn\":70000", "tcbInfo.tcbLevels[0].tcb.pcesvn: 70000 is outside")]
    [InlineData("{\"svn\":2},", "", "tcbInfo.tcbLevels[0].tcb.sgxtcbcomponents: expected 16 components, found 15")]
    [InlineData("\"issueDate\":\"2025-01-01T00:00:00Z\"", "\"issueDate\":\"yesterday\"", "tcbInfo.issueDate: 'yesterday' is not an ISO 8601 date-time")]
    [InlineData("\"tcbType\":0", "\"tcbType\":1", "tcbInfo.tcbType: TCB type 1 is not supported")]
    [InlineData("\"tcbStatus\":\"UpToDate\"", "\"tcbStatus\":7", "tcbInfo.tcbLevels[0].tcbStatus: expected a string")]
    [InlineData("\"pceId\":\"0000\",", "\"pceId\":\"0000\",\"pceId\":\"0001\",", "malformed JSON")]
    public void Malformed_tcb_info_names_the_field(string find, string replace, string message)
    {
        var json = Encoding.UTF8.GetString(SyntheticCollateral.TcbInfoJson("SGX", [new SyntheticLevel(SyntheticCollateral.Svns(2, 2), 13, "UpToDate")], new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        Assert.Contains(find, json);
        var broken = ReplaceFirst(json, find, replace);

        var e = Assert.Throws<EvidenceFormatException>(() => TcbInfo.Parse(Encoding.UTF8.GetBytes(broken)));

        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("\"id\":\"QE\"", "\"id\":\"PCE\"", "enclaveIdentity.id: 'PCE' is not QE, QVE or TD_QE")]
    [InlineData("\"version\":2", "\"version\":1", "enclaveIdentity.version: version 1 is not supported")]
    [InlineData("\"isvsvn\":8", "\"isvsvn\":-1", "enclaveIdentity.tcbLevels[0].tcb.isvsvn: -1 is outside")]
    [InlineData("\"mrsigner\":\"8c", "\"mrsigner\":\"", "enclaveIdentity.mrsigner: expected 64 hex digits")]
    [InlineData("\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\",", "", "enclaveIdentity.attributesMask: missing")]
    public void Malformed_identity_names_the_field(string find, string replace, string message)
    {
        var json = Encoding.UTF8.GetString(SyntheticCollateral.QeIdentityJson("QE", "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff", 1, (8, "UpToDate", [])));
        Assert.Contains(find, json);

        var e = Assert.Throws<EvidenceFormatException>(() => EnclaveIdentity.Parse(Encoding.UTF8.GetBytes(ReplaceFirst(json, find, replace))));

        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_signature_that_is_not_64_bytes_is_refused()
    {
        var e = Assert.Throws<EvidenceFormatException>(() =>
            IntelCollateralDocument.Parse("{\"enclaveIdentity\":{},\"signature\":\"abcd\"}"u8.ToArray(), CollateralDocumentKind.EnclaveIdentity));

        Assert.Contains("enclaveIdentity signature: expected a 64-byte r||s", e.Message);
    }

    [VectorFact]
    public void The_dcaprs_bundle_uses_pck_crl_not_the_stale_processor_ca_crl()
    {
        var bytes = File.ReadAllBytes(CollateralVectors.Path("sgx/dcaprs_rocketlake_00a067110000_full_collateral_20240826.json"));

        foreach (var ca in new[] { PckCaType.Processor, PckCaType.Platform })
        {
            var collateral = CollateralBundle.Parse(bytes, ca);

            var crl = CertificateRevocationList.Parse(collateral.PckCrl!);
            Assert.Equal(new DateTimeOffset(2024, 8, 26, 0, 35, 0, TimeSpan.Zero), crl.ThisUpdate);
            Assert.Contains("Processor", crl.Issuer.Name);
            Assert.Equal(new DateTimeOffset(2024, 3, 20, 19, 19, 30, TimeSpan.Zero), CertificateRevocationList.Parse(collateral.RootCaCrl!).ThisUpdate);
            Assert.Equal("00a067110000", TcbInfo.Parse(collateral.TcbInfo!.Body).FmspcHex);
            Assert.Equal("QE", EnclaveIdentity.Parse(collateral.QeIdentity!.Body).Id);
            Assert.Contains(collateral.TcbSigningCertificates, c => c.Subject.Contains("TCB Signing"));
        }
    }

    [VectorFact]
    public void The_phala_bundle_reads_raw_strings_hex_signatures_and_hex_crls()
    {
        var collateral = CollateralBundle.Parse(File.ReadAllBytes(CollateralVectors.Path("tdx/phala_b0c06f000000_collateral_20250619.json")));

        Assert.StartsWith("{\"id\":\"TDX\",\"version\":3", Encoding.UTF8.GetString(collateral.TcbInfo!.Body));
        Assert.Equal(64, collateral.TcbInfo.Signature.Length);
        Assert.Equal("TD_QE", EnclaveIdentity.Parse(collateral.QeIdentity!.Body).Id);
        Assert.Contains("Platform", CertificateRevocationList.Parse(collateral.PckCrl!).Issuer.Name);
        Assert.Contains("Root CA", CertificateRevocationList.Parse(collateral.RootCaCrl!).Issuer.Name);
        Assert.Contains(collateral.TcbSigningCertificates, c => c.NotAfter.Year == 2032);
    }

    /// <summary>
    /// A bundle comes with a login: its chains are capped as the PCK chain and SNP endorsements are, counted across the
    /// chain fields and before each certificate is parsed, since each one parsed may also cost the verifier a signature
    /// check (1,500 in a megabyte did).
    /// </summary>
    [Fact]
    public void A_bundle_with_more_than_eight_certificates_is_refused_naming_the_limit()
    {
        var certificates = Enumerable.Range(1, CollateralBundle.MaxCertificates).Select(SelfSigned).ToList();
        string Bundle(string first, string second) =>
            System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string> { ["tcb_info_issuer_chain"] = first, ["qe_identity_issuer_chain"] = second, ["pck_crl"] = "" });
        var firstFive = string.Concat(certificates.Take(5));
        var lastThree = string.Concat(certificates.Skip(5));

        // Eight, split over two fields, are all kept.
        Assert.Equal(8, CollateralBundle.Parse(Encoding.UTF8.GetBytes(Bundle(firstFive, lastThree))).TcbSigningCertificates.Count);

        // A ninth is refused before it is parsed: one that would not even decode is refused for the count, not its bytes.
        const string Garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        foreach (var ninth in new[] { SelfSigned(9), Garbage })
        {
            var e = Assert.Throws<EvidenceFormatException>(() => CollateralBundle.Parse(Encoding.UTF8.GetBytes(Bundle(firstFive, lastThree + ninth))));
            Assert.Equal("qe_identity_issuer_chain", e.Field);
            Assert.Contains("more than 8 certificates (CollateralBundle.MaxCertificates", e.Message, StringComparison.Ordinal);
        }
    }

    private static string SelfSigned(int serial)
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest($"CN=Intel SGX TCB Signing {serial}", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(100));
        return certificate.ExportCertificatePem() + "\n";
    }

    private static string ReplaceFirst(string text, string find, string replace)
    {
        var i = text.IndexOf(find, StringComparison.Ordinal);
        return text[..i] + replace + text[(i + find.Length)..];
    }
}
