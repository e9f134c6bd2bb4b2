using System.Runtime.InteropServices;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Dcap;

/// <summary>
/// Flips every byte (bitwise NOT) of each region a signature or binding covers, one at a time, and
/// requires the verifier to reject every single flip — not a sample. Each run redoes only the
/// signature checks: the PCK chain, collateral and key imports come from the caches.
/// </summary>
public class TamperTests
{
    private static readonly DcapVerifyOptions Options = new() { Time = new FakeTimeProvider(QuoteSignatureTests.WithinPckValidity) };

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public async Task Every_byte_of_header_and_body_is_covered_by_the_quote_signature(string file)
    {
        var bytes = ExpectedQuotes.Get(file).Read();
        var quote = DcapQuote.Parse(bytes);
        Assert.Equal(0, OffsetOf(quote.SignedRegion));

        var missed = await FlipEach(bytes, 0, quote.SignedRegion.Length, QuoteSignatureVerifier.QuoteSignatureCheck);

        Assert.True(missed.Count == 0, $"flips not rejected at offsets {string.Join(", ", missed)}");
        var bodyLength = quote.SgxBody?.Raw.Length ?? quote.TdBody!.Raw.Length;
        Assert.Equal(QuoteHeader.Size + (quote.Header.Version == 5 ? 6 : 0) + bodyLength, quote.SignedRegion.Length);
    }

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public async Task Every_byte_of_the_qe_report_is_covered_by_the_pck_signature(string file)
    {
        var bytes = ExpectedQuotes.Get(file).Read();
        var qeReport = DcapQuote.Parse(bytes).Signature.QeReport.Raw;

        var missed = await FlipEach(bytes, OffsetOf(qeReport), qeReport.Length, QuoteSignatureVerifier.QeReportSignatureCheck);

        Assert.True(missed.Count == 0, $"flips not rejected at offsets {string.Join(", ", missed)}");
    }

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public async Task Every_byte_of_the_qe_auth_data_is_bound_by_the_qe_report_data(string file)
    {
        var bytes = ExpectedQuotes.Get(file).Read();
        var authData = DcapQuote.Parse(bytes).Signature.QeAuthData;
        Assert.True(authData.Length > 0);

        var missed = await FlipEach(bytes, OffsetOf(authData), authData.Length, QuoteSignatureVerifier.QeReportDataCheck);

        Assert.True(missed.Count == 0, $"flips not rejected at offsets {string.Join(", ", missed)}");
    }

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public async Task Every_byte_of_the_quote_signature_and_attestation_key_matters(string file)
    {
        var bytes = ExpectedQuotes.Get(file).Read();
        var signature = DcapQuote.Parse(bytes).Signature;
        Assert.Equal(OffsetOf(signature.QuoteSignature) + 64, OffsetOf(signature.AttestationKey));

        var missed = await FlipEach(bytes, OffsetOf(signature.QuoteSignature), 128, QuoteSignatureVerifier.QuoteSignatureCheck);

        Assert.True(missed.Count == 0, $"flips not rejected at offsets {string.Join(", ", missed)}");
    }

    [VectorTheory]
    [MemberData(nameof(ExpectedQuotes.Files), MemberType = typeof(ExpectedQuotes))]
    public async Task The_untampered_quote_passes_every_authenticity_check(string file)
    {
        var verification = await DcapVerifier.VerifyAsync(ExpectedQuotes.Get(file).Read(), Options);
        Assert.DoesNotContain(verification.Log.Failures, f => QuoteSignatureTests.AuthenticityChecks.Contains(f.Check));
    }

    /// <summary>Flips each byte in [start, start+length) in place, verifies, restores; returns the offsets not rejected.</summary>
    private static async Task<List<int>> FlipEach(byte[] bytes, int start, int length, string expectedCheck)
    {
        var missed = new List<int>();
        for (var offset = start; offset < start + length; offset++)
        {
            bytes[offset] = (byte)~bytes[offset];
            try
            {
                var verification = await DcapVerifier.VerifyAsync(bytes, Options);
                if (!verification.Log.Failures.Any(f => f.Check == expectedCheck))
                {
                    missed.Add(offset);
                }
            }
            catch (EvidenceFormatException)
            {
                // Refused as malformed (version, key type, TEE type, body type or a length field): rejected too.
            }
            finally
            {
                bytes[offset] = (byte)~bytes[offset];
            }
        }

        return missed;
    }

    private static int OffsetOf(ReadOnlyMemory<byte> slice) =>
        MemoryMarshal.TryGetArray(slice, out var segment) ? segment.Offset : throw new InvalidOperationException("not array-backed");
}
