namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// What an SEV-SNP report claims, as typed properties. Built from a parsed <see cref="SnpReport"/>;
/// <see cref="Product"/> is filled in by the verifier, which may learn it from the certificate when
/// the report (version 2) does not say.
/// </summary>
public sealed record SnpClaims : EvidenceClaims
{
    /// <summary>Creates claims for a parsed report.</summary>
    public SnpClaims(SnpReport report, string? product = null)
    {
        Report = report;
        Product = product ?? report.Product;
    }

    /// <summary>The parsed report the claims come from.</summary>
    public SnpReport Report { get; }

    /// <summary>The AMD product line (Milan, Genoa, Turin), or null when unknown.</summary>
    public string? Product { get; init; }

    /// <inheritdoc />
    public override TeeType Tee => TeeType.Snp;

    /// <inheritdoc />
    public override ReadOnlyMemory<byte> Measurement => Report.Measurement;

    /// <inheritdoc />
    public override ReadOnlyMemory<byte> ReportData => Report.ReportData;

    /// <inheritdoc />
    public override bool DebugAllowed => Report.Policy.DebugAllowed;

    /// <summary>Report format version.</summary>
    public uint Version => Report.Version;

    /// <summary>Guest SVN from the ID block.</summary>
    public uint GuestSvn => Report.GuestSvn;

    /// <summary>Launch policy.</summary>
    public GuestPolicy Policy => Report.Policy;

    /// <summary>FAMILY_ID from the ID block.</summary>
    public ReadOnlyMemory<byte> FamilyId => Report.FamilyId;

    /// <summary>IMAGE_ID from the ID block.</summary>
    public ReadOnlyMemory<byte> ImageId => Report.ImageId;

    /// <summary>VM privilege level that requested the report.</summary>
    public uint Vmpl => Report.Vmpl;

    /// <summary>Platform state flags.</summary>
    public SnpPlatformInfo PlatformInfo => Report.PlatformInfo;

    /// <summary>Signer information.</summary>
    public SnpSignerInfo SignerInfo => Report.SignerInfo;

    /// <summary>The key that signed the report.</summary>
    public SnpSigningKey SigningKey => Report.SignerInfo.SigningKey;

    /// <summary>HOST_DATA supplied at launch.</summary>
    public ReadOnlyMemory<byte> HostData => Report.HostData;

    /// <summary>SHA-384 of the ID key.</summary>
    public ReadOnlyMemory<byte> IdKeyDigest => Report.IdKeyDigest;

    /// <summary>SHA-384 of the author key.</summary>
    public ReadOnlyMemory<byte> AuthorKeyDigest => Report.AuthorKeyDigest;

    /// <summary>The guest's report ID.</summary>
    public ReadOnlyMemory<byte> ReportId => Report.ReportId;

    /// <summary>The migration agent's report ID.</summary>
    public ReadOnlyMemory<byte> ReportIdMa => Report.ReportIdMa;

    /// <summary>The platform's current TCB.</summary>
    public TcbVersion CurrentTcb => Report.CurrentTcb;

    /// <summary>The TCB the signing key is certified for.</summary>
    public TcbVersion ReportedTcb => Report.ReportedTcb;

    /// <summary>The committed TCB.</summary>
    public TcbVersion CommittedTcb => Report.CommittedTcb;

    /// <summary>The TCB at launch.</summary>
    public TcbVersion LaunchTcb => Report.LaunchTcb;

    /// <summary>CPUID family/model/stepping (version 3+).</summary>
    public SnpCpuid? Cpuid => Report.Cpuid;

    /// <summary>The chip identifier.</summary>
    public ReadOnlyMemory<byte> ChipId => Report.ChipId;

    /// <summary>Running firmware version.</summary>
    public SnpFirmwareVersion CurrentFirmware => Report.CurrentFirmware;

    /// <summary>Committed firmware version.</summary>
    public SnpFirmwareVersion CommittedFirmware => Report.CommittedFirmware;

    /// <summary>Mitigation vector at launch (version 5+).</summary>
    public ulong? LaunchMitigationVector => Report.LaunchMitigationVector;

    /// <summary>Current mitigation vector (version 5+).</summary>
    public ulong? CurrentMitigationVector => Report.CurrentMitigationVector;
}
