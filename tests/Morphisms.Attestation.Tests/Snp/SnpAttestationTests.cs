using Morphisms.Attestation.Validate;

namespace Morphisms.Attestation.Tests.Snp;

public class SnpAttestationTests
{
    [VectorFact]
    public void Gosevguest_report_is_authentic_but_refused_by_the_default_policy()
    {
        const string name = "gosevguest_milan_v2";
        var result = SnpAttestation.Verify(SnpVectors.Report(name), SnpVectors.Endorsements(name), SnpVectors.Options(name));

        Assert.Equal(AttestationStatus.Contraindicated, result.Status);
        Assert.Equal(TeeType.Snp, result.Tee);
        var failure = Assert.Single(result.Failures);
        Assert.Equal(SnpPolicyChecks.Debug, failure.Check);
        Assert.Equal("b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01", Hex.Of(result.Claims.Measurement));
        Assert.True(result.Claims.DebugAllowed);
    }

    [VectorFact]
    public void Authentic_report_that_meets_the_policy_is_affirmed()
    {
        const string name = "trustee_azure_genoa_v3";
        var report = SnpVectors.Report(name);
        var policy = new SnpPolicy { Measurements = [report[0x90..0xC0]], RequireIdBlock = true };

        var result = SnpAttestation.Verify(report, SnpVectors.Endorsements(name), SnpVectors.Options(name), policy);

        Assert.Equal(AttestationStatus.Affirming, result.Status);
        Assert.Empty(result.Failures);
        Assert.False(result.Simulated);
    }

    [VectorFact]
    public void Authenticity_and_policy_failures_are_both_reported()
    {
        const string name = "trustee_milan_vlek_v3";
        var result = SnpAttestation.Verify(SnpVectors.Report(name), SnpVectors.Endorsements(name), SnpVectors.OptionsAt(SnpVectors.Gathered),
            new SnpPolicy { MaximumVmpl = 0 });

        Assert.Equal(["snp.cert_validity", SnpPolicyChecks.Vmpl], result.Failures.Select(f => f.Check));
    }

    [Fact]
    public void Simulated_evidence_is_at_best_a_warning()
    {
        var fake = FakeAmd.Milan;
        var options = new Verify.Snp.SnpVerifyOptions { Anchors = fake.Anchors, Time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(FakeAmd.Now) };

        var result = SnpAttestation.Verify(fake.Report(), new Verify.Snp.SnpEndorsements(fake.Vcek), options);

        Assert.Equal(AttestationStatus.Warning, result.Status);
        Assert.True(result.Simulated);
        Assert.Contains(result.Warnings, w => w.Contains("simulated"));
    }

    [Fact]
    public void Malformed_report_throws_a_format_error()
    {
        var fake = FakeAmd.Milan;
        Assert.Throws<EvidenceFormatException>(() => SnpAttestation.Verify(new byte[100], new Verify.Snp.SnpEndorsements(fake.Vcek)));
    }
}
