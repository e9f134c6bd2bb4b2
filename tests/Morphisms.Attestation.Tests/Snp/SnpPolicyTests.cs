using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Validate;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>Each policy knob, shown to pass and to fail on real claims.</summary>
public class SnpPolicyTests
{
    private static SnpClaims Claims(string name) => new(SnpReport.Parse(SnpVectors.Report(name)));

    private static void Passes(string name, SnpPolicy policy)
    {
        var log = SnpValidator.Validate(Claims(name), policy);
        Assert.True(log.Passed, string.Join("\n", log.Failures));
    }

    private static void Fails(string name, SnpPolicy policy, string check)
    {
        var log = SnpValidator.Validate(Claims(name), policy);
        Assert.Equal([check], log.Failures.Select(f => f.Check).Distinct());
    }

    [VectorFact]
    public void Default_policy_refuses_a_debuggable_guest()
    {
        var log = SnpValidator.Validate(Claims("gosevguest_milan_v2"));

        var failure = Assert.Single(log.Failures);
        Assert.Equal(SnpPolicyChecks.Debug, failure.Check);
        Assert.Contains("debug", failure.Reason);
        Passes("gosevguest_milan_v2", new SnpPolicy { AllowDebug = true });
    }

    [VectorTheory]
    [MemberData(nameof(SnpVectors.ReportNames), MemberType = typeof(SnpVectors))]
    public void Default_policy_accepts_the_non_debug_reports(string name)
    {
        if (name != "gosevguest_milan_v2")
        {
            Passes(name, SnpPolicy.Default);
        }
    }

    [Fact]
    public void Migration_agent_is_refused_by_default()
    {
        var claims = new SnpClaims(SnpReport.Parse(WithPolicy(0x70000)));

        Assert.Equal([SnpPolicyChecks.MigrationAgent], SnpValidator.Validate(claims).Failures.Select(f => f.Check));
        Assert.True(SnpValidator.Validate(claims, new SnpPolicy { AllowMigrationAgent = true }).Passed);
    }

    [Fact]
    public void Single_socket_can_be_required()
    {
        var pinned = new SnpClaims(SnpReport.Parse(WithPolicy(0x130000)));
        var unpinned = new SnpClaims(SnpReport.Parse(WithPolicy(0x30000)));
        var policy = new SnpPolicy { RequireSingleSocket = true };

        Assert.True(SnpValidator.Validate(pinned, policy).Passed);
        Assert.Equal([SnpPolicyChecks.SingleSocket], SnpValidator.Validate(unpinned, policy).Failures.Select(f => f.Check));
    }

    [VectorFact]
    public void Measurement_must_be_one_of_the_expected()
    {
        var measurement = Claims("trustee_milan_v2").Measurement.ToArray();
        Passes("trustee_milan_v2", new SnpPolicy { Measurements = [new byte[48], measurement] });
        Fails("trustee_milan_v2", new SnpPolicy { Measurements = [new byte[48]] }, SnpPolicyChecks.Measurement);
    }

    [VectorFact]
    public void Host_data_must_match()
    {
        Passes("trustee_milan_v2", new SnpPolicy { HostData = new byte[32] });
        Fails("trustee_milan_v2", new SnpPolicy { HostData = [1] }, SnpPolicyChecks.HostData);
    }

    [VectorFact]
    public void Report_data_must_match_with_zero_padding()
    {
        Passes("gosevguest_milan_v2", new SnpPolicy { AllowDebug = true, ReportData = [1, 2, 3, 4, 5] });
        Passes("gosevguest_milan_v2", new SnpPolicy { AllowDebug = true, ReportData = [1, 2, 3, 4, 5, 0, 0] });
        Fails("gosevguest_milan_v2", new SnpPolicy { AllowDebug = true, ReportData = [1, 2, 3, 4] }, SnpPolicyChecks.ReportData);
        Fails("gosevguest_milan_v2", new SnpPolicy { AllowDebug = true, ReportData = new byte[65] }, SnpPolicyChecks.ReportData);
    }

    [VectorFact]
    public void Minimum_tcb_applies_to_reported_committed_and_launch()
    {
        // trustee_milan_vlek_v3: reported ucode 217, committed and launch 219, current 220.
        Passes("trustee_milan_vlek_v3", new SnpPolicy { MinimumTcb = TcbVersion.FromParts(4, 0, 24, 217) });

        var log = SnpValidator.Validate(Claims("trustee_milan_vlek_v3"), new SnpPolicy { MinimumTcb = TcbVersion.FromParts(4, 0, 24, 218) });
        Assert.Equal([SnpPolicyChecks.ReportedTcb], log.Failures.Select(f => f.Check));

        log = SnpValidator.Validate(Claims("trustee_milan_vlek_v3"), new SnpPolicy { MinimumTcb = TcbVersion.FromParts(4, 0, 24, 220) });
        Assert.Equal([SnpPolicyChecks.ReportedTcb, SnpPolicyChecks.CommittedTcb, SnpPolicyChecks.LaunchTcb], log.Failures.Select(f => f.Check));

        log = SnpValidator.Validate(Claims("trustee_milan_vlek_v3"), new SnpPolicy { MinimumTcb = TcbVersion.FromParts(5, 0, 0, 0) });
        Assert.Equal(3, log.Failures.Count);
        Assert.Contains("bl=4 tee=0 snp=24 ucode=217", log.Failures[0].Reason);
    }

    [VectorFact]
    public void Vmpl_can_be_limited()
    {
        Passes("trustee_milan_vlek_v3", new SnpPolicy { MaximumVmpl = 1, AllowedVmpls = [1] });
        Fails("trustee_milan_vlek_v3", new SnpPolicy { MaximumVmpl = 0 }, SnpPolicyChecks.Vmpl);
        Fails("trustee_milan_vlek_v3", new SnpPolicy { AllowedVmpls = [0, 2] }, SnpPolicyChecks.Vmpl);
    }

    [VectorFact]
    public void Guest_svn_has_a_minimum()
    {
        Passes("trustee_milan_v2", new SnpPolicy { MinimumGuestSvn = 4 });
        Fails("trustee_milan_v2", new SnpPolicy { MinimumGuestSvn = 5 }, SnpPolicyChecks.GuestSvn);
    }

    [VectorFact]
    public void Id_block_can_be_required()
    {
        Passes("trustee_milan_v2", new SnpPolicy { RequireIdBlock = true });
        Fails("trustee_genoa_v3", new SnpPolicy { RequireIdBlock = true }, SnpPolicyChecks.IdBlock);
    }

    [VectorFact]
    public void Id_key_digest_must_be_expected()
    {
        var digest = Claims("trustee_milan_v2").IdKeyDigest.ToArray();
        Passes("trustee_milan_v2", new SnpPolicy { IdKeyDigests = [digest] });
        Fails("trustee_milan_v2", new SnpPolicy { IdKeyDigests = [new byte[48]] }, SnpPolicyChecks.IdKeyDigest);
        Fails("trustee_genoa_v3", new SnpPolicy { IdKeyDigests = [digest] }, SnpPolicyChecks.IdBlock);
    }

    [VectorFact]
    public void Author_key_digest_needs_an_author_key()
    {
        // None of the real guests used an author key.
        Fails("trustee_milan_v2", new SnpPolicy { AuthorKeyDigests = [new byte[48]] }, SnpPolicyChecks.AuthorKeyDigest);

        var bytes = SnpReportTests.MinimalReport();
        bytes[0x48] = 1; // AUTHOR_KEY_EN
        bytes[0x110] = 0xAB;
        var claims = new SnpClaims(SnpReport.Parse(bytes));
        var expected = new byte[48];
        expected[0] = 0xAB;
        Assert.True(SnpValidator.Validate(claims, new SnpPolicy { AuthorKeyDigests = [expected] }).Passed);
        Assert.Equal([SnpPolicyChecks.AuthorKeyDigest], SnpValidator.Validate(claims, new SnpPolicy { AuthorKeyDigests = [new byte[48]] }).Failures.Select(f => f.Check));
    }

    [VectorFact]
    public void Family_and_image_ids_must_match()
    {
        var family = new byte[16];
        family[0] = 1;
        var image = new byte[16];
        image[0] = 2;
        Passes("trustee_milan_v2", new SnpPolicy { FamilyId = family, ImageId = image });
        Fails("trustee_milan_v2", new SnpPolicy { FamilyId = image }, SnpPolicyChecks.FamilyId);
        Fails("trustee_milan_v2", new SnpPolicy { ImageId = family }, SnpPolicyChecks.ImageId);
    }

    [VectorFact]
    public void Firmware_has_a_minimum()
    {
        Passes("trustee_genoa_v3", new SnpPolicy { MinimumFirmware = new SnpFirmwareVersion(1, 55, 40) });
        Fails("trustee_milan_v2", new SnpPolicy { MinimumFirmware = new SnpFirmwareVersion(1, 55, 0) }, SnpPolicyChecks.Firmware);
    }

    [VectorFact]
    public void Smt_can_be_required_off()
    {
        // Every real platform here runs with SMT enabled.
        Fails("trustee_genoa_v3", new SnpPolicy { RequireSmtDisabled = true }, SnpPolicyChecks.Smt);
        Assert.True(SnpValidator.Validate(new SnpClaims(SnpReport.Parse(SnpReportTests.MinimalReport())), new SnpPolicy { RequireSmtDisabled = true }).Passed);
    }

    [VectorFact]
    public void Products_and_signing_keys_can_be_limited()
    {
        Passes("trustee_genoa_v3", new SnpPolicy { AllowedProducts = ["genoa"], AllowedSigningKeys = [SnpSigningKey.Vcek] });
        Fails("trustee_genoa_v3", new SnpPolicy { AllowedProducts = ["Milan"] }, SnpPolicyChecks.Product);
        Fails("trustee_milan_vlek_v3", new SnpPolicy { AllowedSigningKeys = [SnpSigningKey.Vcek] }, SnpPolicyChecks.SigningKey);
        Fails("trustee_milan_v2", new SnpPolicy { AllowedProducts = ["Milan"] }, SnpPolicyChecks.Product); // v2: product unknown until verified
    }

    private static byte[] WithPolicy(ulong policy)
    {
        var bytes = SnpReportTests.MinimalReport();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x08), policy);
        return bytes;
    }
}
