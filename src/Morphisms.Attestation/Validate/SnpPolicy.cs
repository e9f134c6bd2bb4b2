using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Validate;

/// <summary>
/// What an SEV-SNP guest must be for a relying party to accept it (appraisal, after the report was
/// verified authentic). Unset expectations are not checked; the defaults refuse a debuggable guest and
/// a guest that may have a migration agent, since either lets the host read guest memory.
/// </summary>
public sealed record SnpPolicy
{
    /// <summary>The default policy: debug and migration agents refused, nothing else required.</summary>
    public static SnpPolicy Default { get; } = new();

    /// <summary>Acceptable launch measurements (48 bytes each); null accepts any.</summary>
    public IReadOnlyList<byte[]>? Measurements { get; init; }

    /// <summary>Expected HOST_DATA (up to 32 bytes; a shorter value must be followed by zeros); null accepts any.</summary>
    public byte[]? HostData { get; init; }

    /// <summary>Expected REPORT_DATA (up to 64 bytes; a shorter value must be followed by zeros); null accepts any.</summary>
    public byte[]? ReportData { get; init; }

    /// <summary>Accept a guest whose policy allows the host to debug it. Off by default: such a guest has no confidentiality.</summary>
    public bool AllowDebug { get; init; }

    /// <summary>Accept a guest whose policy allows a migration agent. Off by default.</summary>
    public bool AllowMigrationAgent { get; init; }

    /// <summary>Require SMT to be disabled on the platform (PLATFORM_INFO.SMT_EN clear), against cross-thread side channels.</summary>
    public bool RequireSmtDisabled { get; init; }

    /// <summary>Require the guest policy to pin the guest to a single socket.</summary>
    public bool RequireSingleSocket { get; init; }

    /// <summary>Minimum TCB, applied to the reported, committed and launch TCBs component by component.</summary>
    public TcbVersion? MinimumTcb { get; init; }

    /// <summary>VMPLs the report may come from; null accepts any.</summary>
    public IReadOnlyCollection<uint>? AllowedVmpls { get; init; }

    /// <summary>Highest (least privileged) VMPL accepted; null accepts any.</summary>
    public uint? MaximumVmpl { get; init; }

    /// <summary>Minimum GUEST_SVN.</summary>
    public uint? MinimumGuestSvn { get; init; }

    /// <summary>Require the guest to have been launched with an ID block (non-zero ID_KEY_DIGEST).</summary>
    public bool RequireIdBlock { get; init; }

    /// <summary>Acceptable ID key digests (48 bytes each); setting this implies an ID block.</summary>
    public IReadOnlyList<byte[]>? IdKeyDigests { get; init; }

    /// <summary>Acceptable author key digests (48 bytes each); setting this implies an author key.</summary>
    public IReadOnlyList<byte[]>? AuthorKeyDigests { get; init; }

    /// <summary>Expected FAMILY_ID (16 bytes).</summary>
    public byte[]? FamilyId { get; init; }

    /// <summary>Expected IMAGE_ID (16 bytes).</summary>
    public byte[]? ImageId { get; init; }

    /// <summary>Minimum SNP firmware version, applied to both the current and the committed firmware.</summary>
    public SnpFirmwareVersion? MinimumFirmware { get; init; }

    /// <summary>Product lines accepted (Milan, Genoa, Turin); null accepts any.</summary>
    public IReadOnlyCollection<string>? AllowedProducts { get; init; }

    /// <summary>Kinds of signing key accepted (VCEK, VLEK); null accepts both.</summary>
    public IReadOnlyCollection<SnpSigningKey>? AllowedSigningKeys { get; init; }
}
