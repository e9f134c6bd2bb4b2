using System.Buffers.Binary;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Tests.Dcap;

public class QuoteParsingTests
{
    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public void Every_quote_parses_and_matches_the_readme(string file)
    {
        var expected = ExpectedQuotes.Get(file);
        var bytes = expected.Read();
        Assert.Equal(expected.Size, bytes.Length);

        var quote = DcapQuote.Parse(bytes);

        Assert.Equal(expected.Version, quote.Header.Version);
        Assert.Equal(expected.TeeType, quote.Header.TeeTypeValue);
        Assert.Equal(QuoteHeader.AttestationKeyTypeEcdsaP256, quote.Header.AttestationKeyType);
        Assert.Equal(expected.QeSvn, quote.Header.QeSvn);
        Assert.Equal(expected.PceSvn, quote.Header.PceSvn);
        Assert.Equal(expected.Trailing, quote.TrailingByteCount);
        Assert.Equal(bytes.Length - expected.Trailing, quote.SignatureDataOffset + quote.SignatureDataLength);
        if (expected.BodyType is { } bodyType)
        {
            Assert.Equal(bodyType, (int)quote.BodyType);
        }

        var qe = quote.Signature.QeReport;
        Assert.Equal(expected.Qe.MrEnclave, Hex.Of(qe.MrEnclave));
        Assert.Equal(expected.Qe.MrSigner, Hex.Of(qe.MrSigner));
        Assert.Equal(expected.Qe.IsvProdId, qe.IsvProdId);
        Assert.Equal(expected.Qe.IsvSvn, qe.IsvSvn);
        Assert.Equal(expected.ReportData, Hex.Of(quote.ReportData));
        Assert.Equal(CertificationDataType.PckCertificateChain, (CertificationDataType)quote.Signature.CertificationData.Type);
        Assert.Equal(expected.Version == 3 ? null : (ushort)6, quote.Signature.OuterCertificationDataType);

        if (expected.Sgx is { } sgx)
        {
            Assert.Equal(TeeType.Sgx, quote.Tee);
            var body = Assert.IsType<SgxReportBody>(quote.SgxBody);
            Assert.Equal(sgx.MrEnclave, Hex.Of(body.MrEnclave));
            Assert.Equal(sgx.MrSigner, Hex.Of(body.MrSigner));
            Assert.Equal(sgx.IsvProdId, body.IsvProdId);
            Assert.Equal(sgx.IsvSvn, body.IsvSvn);
            Assert.Equal(sgx.Attributes, Hex.Of(body.Attributes));
            Assert.Equal(sgx.MiscSelect, Hex.Of(LittleEndian(body.MiscSelect)));
            Assert.Equal(sgx.CpuSvn, Hex.Of(body.CpuSvn));
            Assert.Equal(QuoteBodyType.SgxReport, quote.BodyType);
        }

        if (expected.Tdx is { } tdx)
        {
            Assert.Equal(TeeType.Tdx, quote.Tee);
            var body = Assert.IsType<TdReportBody>(quote.TdBody);
            Assert.Equal(tdx.TeeTcbSvn, Hex.Of(body.TeeTcbSvn));
            Assert.Equal(tdx.TdAttributes, Hex.Of(body.TdAttributes));
            Assert.Equal(tdx.Xfam, Hex.Of(body.Xfam));
            Assert.Equal(tdx.MrSeam, Hex.Of(body.MrSeam));
            Assert.Equal(tdx.MrTd, Hex.Of(body.MrTd));
            Assert.Equal(tdx.MrConfigId, Hex.Of(body.MrConfigId));
            Assert.Equal(tdx.Rtmrs, body.Rtmrs.Select(r => Hex.Of(r)).ToArray());
            Assert.Equal(new string('0', 96), Hex.Of(body.MrOwner));
            Assert.Equal(new string('0', 96), Hex.Of(body.MrOwnerConfig));
            Assert.Equal(tdx.TeeTcbSvn2, body.TeeTcbSvn2 is { } svn2 ? Hex.Of(svn2) : null);
            Assert.Equal(expected.BodyType == 3 ? TdReportVersion.V15 : TdReportVersion.V10, body.Version);
            if (tdx.MrServiceTd is not null)
            {
                Assert.Equal(tdx.MrServiceTd, Hex.Of(body.MrServiceTd!.Value));
            }
        }
    }

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public void Pck_extensions_match_the_readme(string file)
    {
        var expected = ExpectedQuotes.Get(file);
        var quote = DcapQuote.Parse(expected.Read());
        var chain = PckCertificateChainPem.Parse(quote.Signature.CertificationData.Data.Span);
        Assert.Equal(3, chain.Count);

        var pck = PckExtensions.FromCertificate(chain[0]);
        Assert.Equal(expected.Fmspc, pck.FmspcHex);
        Assert.Equal(expected.PceId, Hex.Of(pck.PceId));
        Assert.Equal(expected.TcbComponents, pck.SgxTcbComponents.ToArray());
        Assert.Equal(expected.PckPceSvn, pck.PceSvn);
        Assert.Equal(expected.PckCpuSvn, Hex.Of(pck.CpuSvn));
        Assert.Equal(16, pck.Ppid.Length);
        Assert.Equal($"Intel SGX PCK {expected.PckCa} CA", chain[0].GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.SimpleName, forIssuer: true));
        Assert.Equal(expected.PckValidFrom, chain[0].NotBefore.ToUniversalTime().ToString("yyyy-MM-dd"));
        Assert.Equal(expected.PckValidTo, chain[0].NotAfter.ToUniversalTime().ToString("yyyy-MM-dd"));
        Assert.Equal(expected.PckCa == "Platform", pck.PlatformInstanceId is not null);
    }

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public void Claims_expose_the_measurement_and_debug_bit(string file)
    {
        var expected = ExpectedQuotes.Get(file);
        var quote = DcapQuote.Parse(expected.Read());
        var claims = DcapClaims.FromQuote(quote);

        Assert.Equal(quote.Tee, claims.Tee);
        Assert.Equal(expected.ReportData, Hex.Of(claims.ReportData));
        Assert.False(claims.Simulated);
        switch (claims)
        {
            case SgxClaims sgx:
                Assert.Equal(expected.Sgx!.MrEnclave, Hex.Of(sgx.Measurement));
                Assert.Equal((Convert.FromHexString(expected.Sgx.Attributes)[0] & 0x2) != 0, sgx.DebugAllowed);
                break;
            case TdxClaims tdx:
                Assert.Equal(expected.Tdx!.MrTd, Hex.Of(tdx.Measurement));
                Assert.Equal((Convert.FromHexString(expected.Tdx.TdAttributes)[0] & 0x1) != 0, tdx.DebugAllowed);
                break;
        }
    }

    [VectorFact]
    public void Debug_bits_of_the_real_vectors_are_read_as_documented()
    {
        // ATTRIBUTES 0x07 = INIT | DEBUG | MODE64BIT: these two real enclaves run in debug mode.
        Assert.True(Parse("sgx", "dcaprs_rocketlake_00a067110000_v3_quote.bin").SgxBody!.Debug);
        Assert.True(Parse("sgx", "trustee_occlum_icelake_00606a000000_v3_quote.bin").SgxBody!.Debug);
        Assert.False(Parse("sgx", "automata_icelake_00606a000000_v3_quote.bin").SgxBody!.Debug);
        // TD_ATTRIBUTES byte 0 = 0x01 (TUD.DEBUG) in this trustee TD.
        Assert.True(Parse("tdx", "trustee_spr_50806f000000_v4_quote.bin").TdBody!.Debug);
        Assert.False(Parse("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin").TdBody!.Debug);
    }

    [VectorFact]
    public void Trailing_bytes_are_ignored_and_counted()
    {
        var bytes = TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin");
        var padded = bytes.Concat(new byte[100]).ToArray();
        var quote = DcapQuote.Parse(padded);
        Assert.Equal(100, quote.TrailingByteCount);
        Assert.Equal(DcapQuote.Parse(bytes).SignedRegion.ToArray(), quote.SignedRegion.ToArray());
    }

    [VectorTheory]
    [InlineData("sgx", "automata_icelake_00606a000000_v3_quote.bin")]
    [InlineData("tdx", "trustee_spr_50806f000000_v4_quote.bin")]
    [InlineData("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin")]
    public void Truncation_anywhere_is_a_format_error_naming_field_and_offset(string dir, string file)
    {
        var bytes = TestVectors.Read(dir, file);
        var end = DcapQuote.Parse(bytes) is var q ? q.SignatureDataOffset + q.SignatureDataLength : 0;
        for (var length = 0; length < end; length++)
        {
            var e = Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes.AsSpan(0, length)));
            Assert.StartsWith("quote.", e.Field);
            Assert.Matches(@"offset \d+", e.Message);
        }
    }

    [VectorFact]
    public void Truncation_messages_name_the_field()
    {
        var bytes = TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin");
        Assert.Equal("quote.header.version", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse([])).Field);
        Assert.Equal("quote.header.user_data", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes.AsSpan(0, 40))).Field);
        Assert.Equal("quote.body.sgx_report", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes.AsSpan(0, 100))).Field);
        Assert.Equal("quote.signature_data_len", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes.AsSpan(0, 433))).Field);
        var e = Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes.AsSpan(0, 500)));
        Assert.Equal("quote.signature_data", e.Field);
        Assert.Contains("declared length 4298 at offset 436", e.Message);
    }

    [VectorFact]
    public void A_length_field_pointing_past_its_structure_is_refused()
    {
        var bytes = TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin");
        var quote = DcapQuote.Parse(bytes);
        var authSizeOffset = quote.SignatureDataOffset + 64 + 64 + 384 + 64;
        var tampered = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(tampered.AsSpan(authSizeOffset), 0xFFFF);
        var e = Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(tampered));
        Assert.Equal("quote.signature_data.qe_auth_data", e.Field);

        // Shrinking it instead leaves bytes the structure does not account for.
        tampered = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(tampered.AsSpan(authSizeOffset), (ushort)(quote.Signature.QeAuthData.Length - 1));
        Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(tampered));
    }

    [VectorTheory]
    [InlineData((ushort)1)]
    [InlineData((ushort)2)]
    [InlineData((ushort)6)]
    [InlineData((ushort)0xFFFF)]
    public void Unknown_versions_are_refused_by_name(ushort version)
    {
        var bytes = TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin");
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, version);
        var e = Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes));
        Assert.Equal("quote.header.version", e.Field);
        Assert.Contains($"unsupported quote version {version}", e.Message);
    }

    [VectorTheory]
    [InlineData((ushort)0)]
    [InlineData((ushort)3)]
    [InlineData((ushort)1)]
    public void Unknown_attestation_key_types_are_refused_by_name(ushort keyType)
    {
        var bytes = TestVectors.Read("tdx", "trustee_spr_50806f000000_v4_quote.bin");
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2), keyType);
        var e = Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes));
        Assert.Equal("quote.header.att_key_type", e.Field);
        Assert.Contains($"unsupported attestation key type {keyType}", e.Message);
    }

    [VectorFact]
    public void Unknown_tee_types_and_body_types_are_refused_by_name()
    {
        var v4 = TestVectors.Read("tdx", "trustee_spr_50806f000000_v4_quote.bin");
        BinaryPrimitives.WriteUInt32LittleEndian(v4.AsSpan(4), 0x82);
        Assert.Equal("quote.header.tee_type", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(v4)).Field);

        var v3 = TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin");
        BinaryPrimitives.WriteUInt32LittleEndian(v3.AsSpan(4), 0x81);
        Assert.Equal("quote.header.tee_type", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(v3)).Field);

        var v5 = TestVectors.Read("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin");
        BinaryPrimitives.WriteUInt16LittleEndian(v5.AsSpan(48), 4);
        var e = Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(v5));
        Assert.Equal("quote.body_type", e.Field);
        Assert.Contains("unsupported body type 4", e.Message);

        v5 = TestVectors.Read("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin");
        BinaryPrimitives.WriteUInt16LittleEndian(v5.AsSpan(48), 1);
        Assert.Equal("quote.body_type", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(v5)).Field);

        v5 = TestVectors.Read("tdx", "gotdxguest_emr_90c06f000000_v5_quote.bin");
        BinaryPrimitives.WriteUInt32LittleEndian(v5.AsSpan(50), 584);
        Assert.Equal("quote.body_size", Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(v5)).Field);
    }

    [VectorFact]
    public void A_v4_quote_whose_outer_certification_data_is_not_type_6_is_refused()
    {
        var bytes = TestVectors.Read("tdx", "trustee_spr_50806f000000_v4_quote.bin");
        var quote = DcapQuote.Parse(bytes);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(quote.SignatureDataOffset + 128), 5);
        var e = Assert.Throws<EvidenceFormatException>(() => DcapQuote.Parse(bytes));
        Assert.Equal("quote.signature_data.certification_data.type", e.Field);
    }

    [VectorFact]
    public void The_pck_ca_type_comes_from_the_issuer()
    {
        var processor = DcapQuote.Parse(TestVectors.Read("sgx", "dcaprs_rocketlake_00a067110000_v3_quote.bin"));
        var chain = PckCertificateChainPem.Parse(processor.Signature.CertificationData.Data.Span);
        Assert.Contains("Processor", chain[1].Subject);
        Assert.Null(PckExtensions.FromCertificate(chain[0]).PlatformInstanceId);
        Assert.Equal(SgxType.Standard, PckExtensions.FromCertificate(chain[0]).SgxType);

        var platform = DcapQuote.Parse(TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin"));
        var platformPck = PckExtensions.FromCertificate(PckCertificateChainPem.Parse(platform.Signature.CertificationData.Data.Span)[0]);
        Assert.Equal(SgxType.Scalable, platformPck.SgxType);
        Assert.NotNull(platformPck.Configuration);
        _ = PckCaType.Platform;
    }

    [Fact]
    public void Report_bodies_refuse_wrong_sizes()
    {
        Assert.Equal("sgx_report", Assert.Throws<EvidenceFormatException>(() => SgxReportBody.Parse(new byte[383])).Field);
        Assert.Equal("td_report", Assert.Throws<EvidenceFormatException>(() => TdReportBody.Parse(new byte[600])).Field);
        Assert.Equal(TdReportVersion.V15, TdReportBody.Parse(new byte[648]).Version);
    }

    [Fact]
    public void Malformed_pck_extensions_are_named()
    {
        Assert.Equal("pck.sgx_extensions", Assert.Throws<EvidenceFormatException>(() => PckExtensions.Parse(new byte[] { 0x30, 0x05 })).Field);
        Assert.Equal("pck.sgx_extensions.ppid", Assert.Throws<EvidenceFormatException>(() => PckExtensions.Parse(new byte[] { 0x30, 0x00 })).Field);
        Assert.Equal("pck_chain", Assert.Throws<EvidenceFormatException>(() => PckCertificateChainPem.Parse("no pem here"u8)).Field);
    }

    private static DcapQuote Parse(string dir, string file) => DcapQuote.Parse(TestVectors.Read(dir, file));

    private static byte[] LittleEndian(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }
}
