using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Validate;

/// <summary>
/// Appraises SEV-SNP claims against an <see cref="SnpPolicy"/>. It assumes the report was already
/// verified authentic; on its own it proves nothing about where the claims came from.
/// </summary>
public static class SnpValidator
{
    /// <summary>Runs every check the policy asks for and returns the failures.</summary>
    public static CheckLog Validate(SnpClaims claims, SnpPolicy? policy = null)
    {
        ArgumentNullException.ThrowIfNull(claims);
        policy ??= SnpPolicy.Default;
        var log = new CheckLog();

        CheckGuestPolicy(claims, policy, log);
        CheckLaunchIdentity(claims, policy, log);
        CheckTcb(claims, policy, log);
        CheckPlatform(claims, policy, log);
        CheckIdBlock(claims, policy, log);
        return log;
    }

    private static void CheckGuestPolicy(SnpClaims claims, SnpPolicy policy, CheckLog log)
    {
        log.Require(policy.AllowDebug || !claims.Policy.DebugAllowed, SnpPolicyChecks.Debug,
            $"the guest policy ({claims.Policy}) allows the host to debug the guest");
        log.Require(policy.AllowMigrationAgent || !claims.Policy.MigrationAgentAllowed, SnpPolicyChecks.MigrationAgent,
            $"the guest policy ({claims.Policy}) allows a migration agent");
        log.Require(!policy.RequireSingleSocket || claims.Policy.SingleSocketRequired, SnpPolicyChecks.SingleSocket,
            $"the guest policy ({claims.Policy}) does not restrict the guest to a single socket");
    }

    private static void CheckLaunchIdentity(SnpClaims claims, SnpPolicy policy, CheckLog log)
    {
        if (policy.Measurements is { } measurements)
        {
            log.Require(measurements.Any(m => claims.Measurement.Span.SequenceEqual(m)), SnpPolicyChecks.Measurement,
                $"MEASUREMENT {Hex.Of(claims.Measurement)} is not an expected value");
        }

        if (policy.HostData is { } hostData)
        {
            log.Require(EqualsPadded(claims.HostData.Span, hostData), SnpPolicyChecks.HostData,
                $"HOST_DATA {Hex.Of(claims.HostData)} is not the expected {Hex.Of(hostData)}");
        }

        if (policy.ReportData is { } reportData)
        {
            log.Require(EqualsPadded(claims.ReportData.Span, reportData), SnpPolicyChecks.ReportData,
                $"REPORT_DATA {Hex.Of(claims.ReportData)} is not the expected {Hex.Of(reportData)}");
        }

        if (policy.FamilyId is { } familyId)
        {
            log.Require(claims.FamilyId.Span.SequenceEqual(familyId), SnpPolicyChecks.FamilyId,
                $"FAMILY_ID {Hex.Of(claims.FamilyId)} is not the expected {Hex.Of(familyId)}");
        }

        if (policy.ImageId is { } imageId)
        {
            log.Require(claims.ImageId.Span.SequenceEqual(imageId), SnpPolicyChecks.ImageId,
                $"IMAGE_ID {Hex.Of(claims.ImageId)} is not the expected {Hex.Of(imageId)}");
        }

        if (policy.MinimumGuestSvn is { } minimumSvn)
        {
            log.Require(claims.GuestSvn >= minimumSvn, SnpPolicyChecks.GuestSvn,
                $"GUEST_SVN {claims.GuestSvn} is below the minimum {minimumSvn}");
        }

        if (policy.AllowedVmpls is { } vmpls)
        {
            log.Require(vmpls.Contains(claims.Vmpl), SnpPolicyChecks.Vmpl,
                $"the report comes from VMPL {claims.Vmpl}; allowed: {string.Join(", ", vmpls)}");
        }

        if (policy.MaximumVmpl is { } maximumVmpl)
        {
            log.Require(claims.Vmpl <= maximumVmpl, SnpPolicyChecks.Vmpl,
                $"the report comes from VMPL {claims.Vmpl}, above the maximum {maximumVmpl}");
        }
    }

    private static void CheckTcb(SnpClaims claims, SnpPolicy policy, CheckLog log)
    {
        if (policy.MinimumTcb is { } minimum)
        {
            Minimum(claims.ReportedTcb, "REPORTED_TCB", SnpPolicyChecks.ReportedTcb);
            Minimum(claims.CommittedTcb, "COMMITTED_TCB", SnpPolicyChecks.CommittedTcb);
            Minimum(claims.LaunchTcb, "LAUNCH_TCB", SnpPolicyChecks.LaunchTcb);

            void Minimum(TcbVersion tcb, string field, string check) =>
                log.Require(tcb.IsAtLeast(minimum), check, $"{field} ({tcb}) is below the minimum ({minimum})");
        }

        if (policy.MinimumFirmware is { } firmware)
        {
            log.Require(claims.CurrentFirmware.IsAtLeast(firmware), SnpPolicyChecks.Firmware,
                $"the current firmware {claims.CurrentFirmware} is older than the minimum {firmware}");
            log.Require(claims.CommittedFirmware.IsAtLeast(firmware), SnpPolicyChecks.Firmware,
                $"the committed firmware {claims.CommittedFirmware} is older than the minimum {firmware}");
        }
    }

    private static void CheckPlatform(SnpClaims claims, SnpPolicy policy, CheckLog log)
    {
        log.Require(!policy.RequireSmtDisabled || !claims.PlatformInfo.SmtEnabled, SnpPolicyChecks.Smt,
            $"SMT is enabled on the platform (PLATFORM_INFO {claims.PlatformInfo})");

        if (policy.AllowedProducts is { } products)
        {
            log.Require(claims.Product is not null && products.Contains(claims.Product, StringComparer.OrdinalIgnoreCase), SnpPolicyChecks.Product,
                $"the product {claims.Product ?? "(unknown)"} is not one of {string.Join(", ", products)}");
        }

        if (policy.AllowedSigningKeys is { } signers)
        {
            log.Require(signers.Contains(claims.SigningKey), SnpPolicyChecks.SigningKey,
                $"the report is signed by a {claims.SigningKey}; allowed: {string.Join(", ", signers)}");
        }
    }

    private static void CheckIdBlock(SnpClaims claims, SnpPolicy policy, CheckLog log)
    {
        var hasIdBlock = claims.IdKeyDigest.Span.ContainsAnyExcept((byte)0);
        if (policy.RequireIdBlock || policy.IdKeyDigests is not null)
        {
            log.Require(hasIdBlock, SnpPolicyChecks.IdBlock, "the guest was launched without an ID block (ID_KEY_DIGEST is zero)");
        }

        if (policy.IdKeyDigests is { } idKeys && hasIdBlock)
        {
            log.Require(idKeys.Any(d => claims.IdKeyDigest.Span.SequenceEqual(d)), SnpPolicyChecks.IdKeyDigest,
                $"ID_KEY_DIGEST {Hex.Of(claims.IdKeyDigest)} is not an expected value");
        }

        if (policy.AuthorKeyDigests is { } authorKeys)
        {
            if (!claims.SignerInfo.AuthorKeyEnabled)
            {
                log.Fail(SnpPolicyChecks.AuthorKeyDigest, "the ID block was not signed by an author key (AUTHOR_KEY_EN is clear)");
            }
            else
            {
                log.Require(authorKeys.Any(d => claims.AuthorKeyDigest.Span.SequenceEqual(d)), SnpPolicyChecks.AuthorKeyDigest,
                    $"AUTHOR_KEY_DIGEST {Hex.Of(claims.AuthorKeyDigest)} is not an expected value");
            }
        }
    }

    private static bool EqualsPadded(ReadOnlySpan<byte> actual, ReadOnlySpan<byte> expected) =>
        expected.Length <= actual.Length
        && actual[..expected.Length].SequenceEqual(expected)
        && !actual[expected.Length..].ContainsAnyExcept((byte)0);
}
