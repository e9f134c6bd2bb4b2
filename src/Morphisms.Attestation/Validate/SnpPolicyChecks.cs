namespace Morphisms.Attestation.Validate;

/// <summary>Stable names of the policy checks <see cref="SnpValidator"/> records.</summary>
public static class SnpPolicyChecks
{
    /// <summary>The guest policy allows debugging and the policy does not.</summary>
    public const string Debug = "snp.policy.debug";

    /// <summary>The guest policy allows a migration agent and the policy does not.</summary>
    public const string MigrationAgent = "snp.policy.migration_agent";

    /// <summary>SMT is enabled on the platform (or allowed by the guest policy) and the policy requires it off.</summary>
    public const string Smt = "snp.policy.smt";

    /// <summary>The guest policy does not require a single socket and the policy does.</summary>
    public const string SingleSocket = "snp.policy.single_socket";

    /// <summary>MEASUREMENT is not one of the expected values.</summary>
    public const string Measurement = "snp.measurement";

    /// <summary>HOST_DATA is not the expected value.</summary>
    public const string HostData = "snp.host_data";

    /// <summary>REPORT_DATA is not the expected value.</summary>
    public const string ReportData = "snp.report_data";

    /// <summary>REPORTED_TCB is below the minimum.</summary>
    public const string ReportedTcb = "snp.tcb.reported";

    /// <summary>COMMITTED_TCB is below the minimum.</summary>
    public const string CommittedTcb = "snp.tcb.committed";

    /// <summary>LAUNCH_TCB is below the minimum.</summary>
    public const string LaunchTcb = "snp.tcb.launch";

    /// <summary>The report was requested from a VMPL the policy does not allow.</summary>
    public const string Vmpl = "snp.vmpl";

    /// <summary>GUEST_SVN is below the minimum.</summary>
    public const string GuestSvn = "snp.guest_svn";

    /// <summary>The guest was launched without an ID block and the policy requires one.</summary>
    public const string IdBlock = "snp.id_block";

    /// <summary>ID_KEY_DIGEST is not one of the expected values.</summary>
    public const string IdKeyDigest = "snp.id_key_digest";

    /// <summary>AUTHOR_KEY_DIGEST is not one of the expected values (or no author key was used).</summary>
    public const string AuthorKeyDigest = "snp.author_key_digest";

    /// <summary>FAMILY_ID is not the expected value.</summary>
    public const string FamilyId = "snp.family_id";

    /// <summary>IMAGE_ID is not the expected value.</summary>
    public const string ImageId = "snp.image_id";

    /// <summary>The current or committed firmware is older than the minimum.</summary>
    public const string Firmware = "snp.firmware";

    /// <summary>The product is not one of those allowed.</summary>
    public const string Product = "snp.policy.product";

    /// <summary>The report was signed by a kind of key (VCEK/VLEK) the policy does not allow.</summary>
    public const string SigningKey = "snp.policy.signing_key";
}
