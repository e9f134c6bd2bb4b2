using Morphisms.Client.Functions;
using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// Stored trust records are used only when they say how the KMS's measurement was checked, completely: a record from
/// before measurements were required, or one that pinned a TDX KMS by MRTD alone, is refused with how to trust again.
/// </summary>
public sealed class KmsTrustRecordTests
{
    private static readonly string Mrtd = new('a', 96);

    private static KmsTrustRecord Record(string tee, bool simulated = false) => new()
    {
        KmsUrl = "https://kms.example:8200",
        RootCaPem = "-----BEGIN CERTIFICATE-----",
        RootCaSha256 = "00",
        TlsSpkiSha256 = "00",
        Tee = tee,
        Measurement = Mrtd,
        Simulated = simulated,
        VerifiedAt = DateTimeOffset.UnixEpoch,
    };

    [Fact]
    public void A_record_from_before_measurements_were_required_is_refused_with_how_to_trust_again()
    {
        var problem = Record("snp").UsabilityProblem();

        Assert.NotNull(problem);
        Assert.Contains("written before KMS measurements were required", problem);
        Assert.Contains("morph kms trust https://kms.example:8200 --expect-measurement snp:MEASUREMENT", problem);

        Assert.Contains("or --dev for this installation's dev KMS", Record("snp", simulated: true).UsabilityProblem());
    }

    /// <summary>The previous version stored the bare MRTD for a TDX KMS: that pin is what this change removes.</summary>
    [Fact]
    public void A_tdx_record_pinned_by_a_bare_mrtd_is_refused()
    {
        var problem = (Record("tdx") with { ExpectedMeasurements = [Mrtd] }).UsabilityProblem();

        Assert.NotNull(problem);
        Assert.Contains("pinned a TDX KMS by MRTD alone", problem);
        Assert.Contains("--expect-measurement tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3", problem);
    }

    /// <summary>A bare SNP MEASUREMENT or SGX MRENCLAVE was already a complete pin: such records keep working.</summary>
    [Theory]
    [InlineData("snp", 96)]
    [InlineData("sgx", 64)]
    public void A_record_with_a_bare_snp_or_sgx_measurement_is_still_used(string tee, int digits)
    {
        Assert.Null((Record(tee) with { ExpectedMeasurements = [new string('b', digits)] }).UsabilityProblem());
    }

    [Fact]
    public void Typed_records_and_an_explicit_any_measurement_are_used()
    {
        var tdx = "tdx:" + string.Join('/', Enumerable.Repeat(Mrtd, 5));
        Assert.Null((Record("tdx") with { ExpectedMeasurements = [tdx] }).UsabilityProblem());
        Assert.Null((Record("snp") with { ExpectedMeasurements = ["snp:" + Mrtd] }).UsabilityProblem());
        Assert.Null((Record("snp") with { AnyMeasurement = true, RootCaKeyProven = true }).UsabilityProblem());
    }

    /// <summary>
    /// Before a KMS had to prove it holds its root CA's key, a record made with --any-measurement may pin an impostor's
    /// TLS key beside the real KMS's public root: it is refused, with how to trust again. With a measurement pin the
    /// measured KMS code vouched for the root (a genuine KMS presents only its own), so such a record is still used.
    /// </summary>
    [Fact]
    public void An_any_measurement_record_from_before_the_root_ca_proof_is_refused()
    {
        var problem = (Record("snp") with { AnyMeasurement = true }).UsabilityProblem();

        Assert.NotNull(problem);
        Assert.Contains("accepted any KMS measurement before a KMS had to prove it holds its root CA's key", problem);
        Assert.Contains("morph kms trust https://kms.example:8200 --expect-measurement snp:MEASUREMENT", problem);
        Assert.Null((Record("snp") with { ExpectedMeasurements = ["snp:" + Mrtd] }).UsabilityProblem());
    }

    [Fact]
    public void Contradicting_or_unreadable_records_are_refused()
    {
        Assert.Contains("both expects measurements and accepts any", (Record("snp") with { AnyMeasurement = true, ExpectedMeasurements = ["snp:" + Mrtd] }).UsabilityProblem());
        Assert.Contains("not one (tdx: missing RTMR1", (Record("tdx") with { ExpectedMeasurements = [$"tdx:{Mrtd}/{Mrtd}"] }).UsabilityProblem());
        Assert.Contains("expects no sgx measurement", (Record("sgx") with { ExpectedMeasurements = ["snp:" + Mrtd] }).UsabilityProblem());
    }

    /// <summary>The library refuses such a record where it is used to trust functions, not only in the CLI.</summary>
    [Fact]
    public void The_function_handler_refuses_an_unusable_record()
    {
        var thrown = Assert.Throws<InvalidOperationException>(() =>
            FunctionHttpHandler.Create(Record("snp"), new FunctionExpectation { Function = "signer", Host = "signer.fn.example" }));
        Assert.Contains("written before KMS measurements were required", thrown.Message);
    }
}
