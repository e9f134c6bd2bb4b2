using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Tests.Dcap;
using Morphisms.Attestation.Tests.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Fuzz;

/// <summary>
/// DCAP quotes come from the instance being attested, through the host: SGX v3/v4 and TDX v4/v5 quotes, mutated
/// thousands of ways (their length, count and type fields above all), must parse or be refused with
/// <see cref="EvidenceFormatException"/> — never an index, overflow or null-reference exception, which the KMS would
/// answer with a 500.
/// </summary>
public sealed class DcapQuoteFuzzTests(SimulatedFixture fixture) : IClassFixture<SimulatedFixture>
{
    private static readonly string[] RealQuotes =
    [
        "sgx/automata_icelake_00606a000000_v3_quote.bin",
        "sgx/dcaprs_rocketlake_00a067110000_v3_quote.bin",
        "tdx/trustee_spr_50806f000000_v4_quote.bin",
        "tdx/gotdxguest_gcp_spr_00806f050000_v4_quote_8000.bin",
        "tdx/trustee_emr_90c06f000000_v5_quote.bin",
        "tdx/automata_alibaba_emr_90c06f000000_v5_quote.bin",
    ];

    /// <summary>Real SGX v3, TDX v4 (one padded to 8000 bytes) and TDX v5 quotes, and a synthetic SGX v4 one.</summary>
    [VectorFact]
    public void Real_and_synthetic_quotes_parse_or_are_refused_as_malformed()
    {
        using var synthetic = new SyntheticQuote();
        var seeds = RealQuotes.Select(path => Seed(path, TestVectors.Read(path.Split('/'))))
            .Append(Seed("synthetic SGX v4", synthetic.Build(version: 4)))
            .ToList();

        var stats = Fuzzer.Run("DcapQuote.Parse", seed: 0x0DCA, iterations: 3000, seeds, Mutations.Bytes, ParseAndRead, typeof(EvidenceFormatException));

        // The structural mutations must reach past the header: some mutated quotes still parse.
        Assert.True(stats.Accepted > 100, $"only {stats.Accepted} mutated quotes parsed");
    }

    /// <summary>
    /// The simulated TEE's SGX quote needs no vectors, so this runs everywhere. Its keys are made anew each run, so a
    /// failure here reproduces by its mutation rather than byte for byte.
    /// </summary>
    [Fact]
    public void Simulated_sgx_quote_parses_or_is_refused_as_malformed()
    {
        var seeds = new[] { Seed("simulated SGX v3", SimulatedQuote()) };
        Fuzzer.Run("DcapQuote.Parse (simulated)", seed: 0x5164, iterations: 1500, seeds, Mutations.Bytes, ParseAndRead, typeof(EvidenceFormatException));
    }

    /// <summary>
    /// The KMS verifies what parses: signatures, the PCK chain from the quote's own PEM, the QE report binding and the
    /// TCB evaluation against collateral. A mutated quote must come out of that as failed checks or a format error too.
    /// Real SGX v3, TDX v4 and TDX v5 quotes with their collateral, at their evaluation times.
    /// </summary>
    [VectorTheory]
    [InlineData("sgx-rocketlake-dcaprs", 0x7E51)]
    [InlineData("tdx-spr-trustee", 0x7E52)]
    [InlineData("tdx-emr-alibaba-automata", 0x7E53)]
    public void Mutated_real_quote_is_verified_or_refused_as_malformed(string caseName, int seed)
    {
        var row = DcapEndToEndCases.All.Single(c => c.Name == caseName);
        var options = new DcapVerifyOptions { Time = new FakeTimeProvider(row.At), CollateralSource = row.OpenSource() };
        var quote = TestVectors.Read(row.QuoteDir, row.QuoteFile);
        Fuzzer.Run($"DcapVerifier.VerifyAsync ({caseName})", seed, iterations: 500, [Seed(caseName, quote)], Mutations.Bytes,
            bytes => DcapVerifier.VerifyAsync(bytes, options).AsTask().GetAwaiter().GetResult().ToResult(), typeof(EvidenceFormatException));
    }

    /// <summary>The same through the simulated TEE, whose quotes and collateral need no vectors.</summary>
    [Fact]
    public void Mutated_simulated_quote_is_verified_or_refused_as_malformed()
    {
        var tee = fixture.Authority;
        var options = new DcapVerifyOptions
        {
            Anchors = tee.TrustedWith(TrustAnchors.Vendor),
            Collateral = tee.CreateSgxCollateral(DateTimeOffset.UtcNow),
        };
        Fuzzer.Run("DcapVerifier.VerifyAsync (simulated)", seed: 0x7E50, iterations: 600, [Seed("simulated SGX v3", SimulatedQuote())], Mutations.Bytes,
            bytes => DcapVerifier.VerifyAsync(bytes, options).AsTask().GetAwaiter().GetResult().ToResult(), typeof(EvidenceFormatException));
    }

    /// <summary>The wire fields of a quote, read from its parse: header, v5 body type and size, every length that follows.</summary>
    internal static IReadOnlyList<WireField> QuoteFields(byte[] bytes)
    {
        var quote = DcapQuote.Parse(bytes);
        var fields = new List<WireField>
        {
            new("quote.header.version", 0, 2),
            new("quote.header.att_key_type", 2, 2),
            new("quote.header.tee_type", 4, 4),
        };
        if (quote.Header.Version == 5)
        {
            fields.Add(new("quote.body_type", QuoteHeader.Size, 2));
            fields.Add(new("quote.body_size", QuoteHeader.Size + 2, 4));
        }

        fields.Add(new("quote.signature_data_len", quote.SignatureDataOffset - 4, 4));
        var at = quote.SignatureDataOffset + 128;
        if (quote.Header.Version >= 4)
        {
            fields.Add(new("certification_data.type", at, 2));
            fields.Add(new("certification_data.size", at + 2, 4));
            at += 6;
        }

        at += SgxReportBody.Size + 64;
        fields.Add(new("qe_auth_data.size", at, 2));
        at += 2 + quote.Signature.QeAuthData.Length;
        fields.Add(new("pck certification_data.type", at, 2));
        fields.Add(new("pck certification_data.size", at + 2, 4));
        return fields;
    }

    /// <summary>
    /// What a display or a verifier reads of a parsed quote, the PCK chain's SGX extension included (as
    /// <see cref="EvidenceVerifier.Parse"/> does). Most mutations leave the chain as it was, and loading certificates
    /// dominates the cost, so a chain's outcome is remembered by its digest: the same bytes parse the same way.
    /// </summary>
    internal static void ParseAndRead(byte[] bytes)
    {
        var quote = DcapQuote.Parse(bytes);
        var pck = quote.Signature.CertificationData.IsPckCertificateChain ? ChainExtensions(quote.Signature.CertificationData.Data) : null;
        var claims = DcapClaims.FromQuote(quote, pck);
        _ = (claims.Measurement.Length, claims.ReportData.Length, claims.DebugAllowed, claims.QeReport.Debug, claims.QeReport.Xfrm, pck?.FmspcHex);
        if (claims is TdxClaims tdx)
        {
            _ = (tdx.Report.Rtmrs.Count, tdx.TeeTcbSvn2, tdx.MrServiceTd);
        }
    }

    private static readonly ConcurrentDictionary<string, (PckExtensions? Extensions, EvidenceFormatException? Error)> Chains = new();

    private static PckExtensions ChainExtensions(ReadOnlyMemory<byte> pem)
    {
        var key = Convert.ToHexString(SHA256.HashData(pem.Span));
        if (!Chains.TryGetValue(key, out var outcome))
        {
            try
            {
                outcome = (PckExtensions.FromCertificate(PckCertificateChainPem.Parse(pem.Span)[0]), null);
            }
            catch (EvidenceFormatException e)
            {
                outcome = (null, e);
            }

            Chains[key] = outcome;
        }

        return outcome.Extensions ?? throw outcome.Error!;
    }

    private static FuzzSeed Seed(string name, byte[] bytes) => new(name, bytes, QuoteFields(bytes));

    private byte[] SimulatedQuote() => fixture.Authority.CreateSgxQuote(new SimulatedSgxQuoteRequest
    {
        ReportData = SHA512.HashData("fuzz"u8),
        MrEnclave = SHA256.HashData("fuzz"u8),
    });
}
