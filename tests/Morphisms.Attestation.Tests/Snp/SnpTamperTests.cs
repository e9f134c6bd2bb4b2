using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>
/// Every byte of every real report matters: changing any one of them must be caught, either by the
/// parser (a field that cannot hold that value) or by the signature. The chain is verified once and
/// cached, so each iteration costs about one ECDSA verification.
/// </summary>
public class SnpTamperTests
{
    [VectorTheory]
    [MemberData(nameof(SnpVectors.ReportNames), MemberType = typeof(SnpVectors))]
    public void Changing_any_signed_byte_is_rejected(string name)
    {
        var (verifier, endorsements, original) = Setup(name);
        var missed = new List<int>();

        for (var offset = 0; offset < SnpReport.SignatureOffset; offset++)
        {
            var bytes = (byte[])original.Clone();
            bytes[offset] ^= 0xFF;
            if (!RejectedWith(verifier, endorsements, bytes, SnpChecks.Signature))
            {
                missed.Add(offset);
            }
        }

        Assert.True(missed.Count == 0, $"{name}: changes at offsets {string.Join(", ", missed.Select(o => $"0x{o:x}"))} were accepted");
    }

    [VectorTheory]
    [MemberData(nameof(SnpVectors.ReportNames), MemberType = typeof(SnpVectors))]
    public void Changing_any_signature_byte_is_rejected(string name)
    {
        var (verifier, endorsements, original) = Setup(name);
        var missed = new List<int>();

        for (var offset = SnpReport.SignatureOffset; offset < SnpReport.Size; offset++)
        {
            var bytes = (byte[])original.Clone();
            bytes[offset] ^= 0x01;
            if (!RejectedWith(verifier, endorsements, bytes, SnpChecks.Signature))
            {
                missed.Add(offset);
            }
        }

        Assert.True(missed.Count == 0, $"{name}: changes at offsets {string.Join(", ", missed.Select(o => $"0x{o:x}"))} were accepted");
    }

    private static (SnpVerifier Verifier, SnpEndorsements Endorsements, byte[] Report) Setup(string name)
    {
        var verifier = new SnpVerifier(SnpVectors.Options(name));
        var endorsements = SnpVectors.Endorsements(name);
        var report = SnpVectors.Report(name);
        Assert.True(verifier.Verify(report, endorsements).Passed, "the untouched report must verify");
        return (verifier, endorsements, report);
    }

    private static bool RejectedWith(SnpVerifier verifier, SnpEndorsements endorsements, byte[] report, string check)
    {
        try
        {
            return verifier.Verify(report, endorsements).Log.Failures.Any(f => f.Check == check);
        }
        catch (EvidenceFormatException)
        {
            return true;
        }
    }
}
