using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Validate;
using Morphisms.Attestation.Verify.Snp;
using Morphisms.Kms.Attest;
using Morphisms.Kms.Functions;
using Morphisms.Testing;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>
/// Login with real hardware evidence (the shared test vectors): what binds the workload — SNP HOST_DATA, TDX
/// MRCONFIGID — is compared with the registration. The evidence was captured elsewhere, so its REPORT_DATA never binds
/// this KMS's nonce and every login here is refused; what matters is which checks failed.
/// </summary>
public class WorkloadBindingLoginTests
{
    private const string SnpReportFile = "trustee_milan_v2_report.bin";
    private const string SnpVcekFile = "trustee_milan_vcek.der";

    // Its MRCONFIGID, RTMR1 and RTMR2 are all set, as on a Kata TD launched with initdata.
    private const string TdxQuoteFile = "trustee_gnr_00a06d080000_v4_quote.bin";

    [VectorFact]
    public async Task A_real_snp_report_whose_host_data_is_not_the_registered_one_is_refused_for_it()
    {
        var report = TestVectors.Read("snp", SnpReportFile);
        var claims = (SnpClaims)EvidenceVerifier.Parse(TeeType.Snp, report);
        var measurement = Hex.Of(claims.Measurement);
        await using var kms = await TestKms.StartUnsealedAsync();

        var wrong = new string('c', 64);
        var refused = await LoginAsync(kms, "signer", "snp", report, TestVectors.Read("snp", SnpVcekFile), new { snp = new { measurements = new[] { measurement }, host_data = wrong, minimum_tcb = Floor(claims) } });
        Assert.Contains($"{SnpPolicyChecks.HostData}: HOST_DATA {Hex.Of(claims.HostData)} is not the expected {wrong}", refused, StringComparison.Ordinal);

        // The same report against its own HOST_DATA (all zeros: registered only beside the opt-in): that check passes,
        // so the refusal above was the comparison, not the report.
        var control = await LoginAsync(kms, "other", "snp", report, TestVectors.Read("snp", SnpVcekFile), new
        {
            snp = new { measurements = new[] { measurement }, host_data = Hex.Of(claims.HostData), launch_measurement_binds_workload = true, minimum_tcb = Floor(claims) },
        });
        Assert.DoesNotContain(SnpPolicyChecks.HostData, control, StringComparison.Ordinal);
        Assert.DoesNotContain("not registered", control, StringComparison.Ordinal);
        Assert.Contains($"{LoginAppraiser.BindingCheck}: REPORT_DATA", control, StringComparison.Ordinal);
    }

    [VectorFact]
    public async Task A_real_tdx_quote_whose_mrconfigid_is_not_the_registered_one_is_refused_for_it()
    {
        var quote = TestVectors.Read("tdx", TdxQuoteFile);
        var claims = (TdxClaims)EvidenceVerifier.Parse(TeeType.Tdx, quote);
        await using var kms = await TestKms.StartUnsealedAsync();
        object Registration(string mrConfigId) => new
        {
            tdx = new { mrtds = new[] { Hex.Of(claims.MrTd) }, rtmr1 = Hex.Of(claims.Rtmr1), rtmr2 = Hex.Of(claims.Rtmr2), mrconfigid = mrConfigId },
        };

        var wrong = new string('e', 96);
        var refused = await LoginAsync(kms, "signer", "tdx", quote, null, Registration(wrong));
        Assert.Contains($"{DcapPolicyChecks.MrConfigId}: ", refused, StringComparison.Ordinal);

        var control = await LoginAsync(kms, "other", "tdx", quote, null, Registration(Hex.Of(claims.MrConfigId)));
        Assert.DoesNotContain(DcapPolicyChecks.MrConfigId, control, StringComparison.Ordinal);
        Assert.DoesNotContain("not registered", control, StringComparison.Ordinal);
        Assert.Contains($"{LoginAppraiser.BindingCheck}: REPORT_DATA", control, StringComparison.Ordinal);
    }

    [VectorFact]
    public async Task A_vmpl_1_report_is_refused_unless_the_registration_allows_that_vmpl()
    {
        // The VLEK vector comes from VMPL 1: without max_vmpl a registration accepts VMPL 0 only.
        var report = TestVectors.Read("snp", "trustee_milan_vlek_v3_report.bin");
        var claims = (SnpClaims)EvidenceVerifier.Parse(TeeType.Snp, report);
        Assert.Equal(1u, claims.Vmpl);
        await using var kms = await TestKms.StartUnsealedAsync();
        object Registration(int? maxVmpl) => maxVmpl is { } max
            ? new { snp = new { measurements = new[] { Hex.Of(claims.Measurement) }, host_data = Hex.Of(claims.HostData), launch_measurement_binds_workload = true, minimum_tcb = Floor(claims), max_vmpl = max } }
            : new { snp = new { measurements = new[] { Hex.Of(claims.Measurement) }, host_data = Hex.Of(claims.HostData), launch_measurement_binds_workload = true, minimum_tcb = Floor(claims) } };
        var vlek = TestVectors.Read("snp", "trustee_milan_vlek.der");

        var refused = await LoginAsync(kms, "signer", "snp", report, vlek, Registration(null));
        Assert.Contains($"{SnpPolicyChecks.Vmpl}: the report comes from VMPL 1, above the maximum 0", refused, StringComparison.Ordinal);

        var allowed = await LoginAsync(kms, "other", "snp", report, vlek, Registration(1));
        Assert.DoesNotContain(SnpPolicyChecks.Vmpl, allowed, StringComparison.Ordinal);
        Assert.Contains($"{LoginAppraiser.BindingCheck}: REPORT_DATA", allowed, StringComparison.Ordinal);
    }

    /// <summary>Values written before registration refused them (or proposed then and approved later) are refused at login.</summary>
    [VectorTheory]
    [InlineData("snp", false, "snp.host_data is missing")]
    [InlineData("tdx", false, "tdx.rtmr1 is missing")]
    [InlineData("snp", true, null)]
    [InlineData("tdx", true, null)]
    public async Task A_stored_revision_that_binds_no_workload_is_refused_at_login(string tee, bool bound, string? named)
    {
        var evidence = tee == "snp" ? TestVectors.Read("snp", SnpReportFile) : TestVectors.Read("tdx", TdxQuoteFile);
        var claims = EvidenceVerifier.Parse(tee == "snp" ? TeeType.Snp : TeeType.Tdx, evidence);
        var values = tee == "snp"
            ? new ReferenceValues { Snp = new SnpReference { Measurements = [Hex.Of(claims.Measurement)], LaunchMeasurementBindsWorkload = bound } }
            : new ReferenceValues
            {
                Tdx = bound
                    ? new TdxReference { MrTds = [Hex.Of(claims.Measurement)], Rtmr1 = Hex.Of(((TdxClaims)claims).Rtmr1), Rtmr2 = Hex.Of(((TdxClaims)claims).Rtmr2), LaunchMeasurementBindsWorkload = true }
                    : new TdxReference { MrTds = [Hex.Of(claims.Measurement)] },
            };
        var function = new FunctionRecord
        {
            Name = "signer",
            Revisions = [new FunctionRevision { Revision = 1, Status = RevisionStatus.Active, CreatedTime = DateTimeOffset.UnixEpoch, ReferenceValues = values }],
        };
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var login = new LoginRequest
        {
            Function = "signer",
            Tee = claims.Tee,
            Evidence = evidence,
            SnpEndorsements = tee == "snp" ? SnpEndorsements.Load(TestVectors.Read("snp", SnpVcekFile)) : null,
            Nonce = new byte[ChallengeStore.NonceBytes],
            Csr = new CertificateRequest("CN=signer", key, HashAlgorithmName.SHA256),
            CsrSpki = key.ExportSubjectPublicKeyInfo(),
        };

        var appraisal = await new LoginAppraiser(new KmsAttestationOptions(), TimeProvider.System).AppraiseAsync(login, function, CancellationToken.None);

        var unbound = appraisal.Result.Failures.Where(f => f.Check == LoginAppraiser.WorkloadBindingCheck).ToList();
        if (named is null)
        {
            Assert.Empty(unbound);
        }
        else
        {
            Assert.Contains($"revision 1 of function signer does not bind the workload ({named})", Assert.Single(unbound).Reason, StringComparison.Ordinal);
        }

        Assert.Equal(1, appraisal.Revision?.Revision);
    }

    /// <summary>Registers <paramref name="function"/>, logs in with the evidence and returns the 403's message.</summary>
    private static async Task<string> LoginAsync(TestKms kms, string function, string tee, byte[] evidence, byte[]? endorsements, object registration)
    {
        (await kms.Client.PutAsync("morphisms/functions/" + function, registration)).Expect(200);
        var nonce = await AttestFlow.ChallengeAsync(kms.Client, function);
        using var instance = new FunctionInstance();
        return Assert.Single((await AttestFlow.LoginAsync(kms.Client, tee, evidence, nonce, instance.CsrPem, function, endorsements)).Expect(403).Errors);
    }

    /// <summary>
    /// The report's own TCB as the registration's floor (per component, the lowest of its reported, committed and launch
    /// TCB), so these tests are about what they name, not the platform's firmware.
    /// </summary>
    private static object Floor(SnpClaims claims)
    {
        TcbVersion[] tcbs = [claims.ReportedTcb, claims.CommittedTcb, claims.LaunchTcb];
        return new { bootloader = tcbs.Min(t => t.Bootloader), tee = tcbs.Min(t => t.Tee), snp = tcbs.Min(t => t.Snp), microcode = tcbs.Min(t => t.Microcode) };
    }
}
