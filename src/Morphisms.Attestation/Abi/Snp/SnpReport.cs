using System.Buffers.Binary;

namespace Morphisms.Attestation.Abi.Snp;

/// <summary>
/// An SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI specification, table "ATTESTATION_REPORT
/// structure"), parsed strictly: exactly 1184 bytes, a known version, ECDSA P-384 signature
/// algorithm, and every reserved field the ABI requires to be zero is zero. Nothing here checks
/// the signature; see <c>Verify.Snp.SnpVerifier</c>.
/// </summary>
public sealed class SnpReport
{
    /// <summary>Size of a report in bytes.</summary>
    public const int Size = 0x4A0;

    /// <summary>Offset of the signature; the signature covers bytes 0 to this offset (exclusive).</summary>
    public const int SignatureOffset = 0x2A0;

    /// <summary>Length of each little-endian signature component (R and S) in the ABI signature format.</summary>
    public const int SignatureComponentSize = 72;

    /// <summary>The only signature algorithm the ABI defines: ECDSA P-384 with SHA-384.</summary>
    public const uint EcdsaP384Sha384 = 1;

    private readonly byte[] _raw;

    private SnpReport(byte[] raw)
    {
        _raw = raw;
        var span = raw.AsSpan();

        Version = U32(span, 0x00);
        if (Version is < 2 or > 5)
        {
            throw new EvidenceFormatException("version", $"report version {Version} is not supported (2, 3, 4 and 5 are)");
        }

        GuestSvn = U32(span, 0x04);
        var policy = U64(span, 0x08);
        GuestPolicy.Validate(policy);
        Policy = new GuestPolicy(policy);
        Vmpl = U32(span, 0x30);
        SignatureAlgorithm = U32(span, 0x34);
        if (SignatureAlgorithm != EcdsaP384Sha384)
        {
            throw new EvidenceFormatException("signature_algo", $"value {SignatureAlgorithm} is not 1 (ECDSA P-384 with SHA-384)");
        }

        PlatformInfo = new SnpPlatformInfo(U64(span, 0x40));
        var signerInfo = U32(span, 0x48);
        SnpSignerInfo.Validate(signerInfo);
        SignerInfo = new SnpSignerInfo(signerInfo);
        RequireZero(span, 0x4C, 0x50, "reserved_0x4c");

        // Version 3 added CPUID; versions 4 and 5 keep the version 3 layout (5 adds the mitigation vectors).
        var reservedCpuidStart = 0x188;
        if (Version >= 3)
        {
            Cpuid = new SnpCpuid(span[0x188], span[0x189], span[0x18A]);
            reservedCpuidStart = 0x18B;
            Product = SnpProducts.FromCpuid(Cpuid.Value);
        }

        RequireZero(span, reservedCpuidStart, 0x1A0, "reserved_0x188");
        RequireZero(span, 0x1EB, 0x1EC, "reserved_0x1eb");
        RequireZero(span, 0x1EF, 0x1F0, "reserved_0x1ef");

        var reservedTailStart = 0x1F8;
        if (Version >= 5)
        {
            LaunchMitigationVector = U64(span, 0x1F8);
            CurrentMitigationVector = U64(span, 0x200);
            reservedTailStart = 0x208;
        }

        RequireZero(span, reservedTailStart, SignatureOffset, $"reserved_0x{reservedTailStart:x}");
        RequireZero(span, SignatureOffset + (2 * SignatureComponentSize), Size, "signature.reserved");

        // Zen 5 moved the TCB fields; family 1Ah and later use the new layout, older parts (and v2
        // reports, which only Milan and Genoa produce) the old one.
        Layout = Cpuid is { Family: >= 0x1A } ? TcbLayout.Turin : TcbLayout.Legacy;
        CurrentTcb = Tcb(span, 0x38, "current_tcb");
        ReportedTcb = Tcb(span, 0x180, "reported_tcb");
        CommittedTcb = Tcb(span, 0x1E0, "committed_tcb");
        LaunchTcb = Tcb(span, 0x1F0, "launch_tcb");
        CurrentFirmware = new SnpFirmwareVersion(span[0x1EA], span[0x1E9], span[0x1E8]);
        CommittedFirmware = new SnpFirmwareVersion(span[0x1EE], span[0x1ED], span[0x1EC]);
    }

    /// <summary>The report bytes.</summary>
    public ReadOnlyMemory<byte> Raw => _raw;

    /// <summary>The bytes the signature covers (0x000–0x29F).</summary>
    public ReadOnlyMemory<byte> SignedBytes => _raw.AsMemory(0, SignatureOffset);

    /// <summary>Report format version (2, 3, 4 or 5).</summary>
    public uint Version { get; }

    /// <summary>Guest SVN from the ID block (zero without one).</summary>
    public uint GuestSvn { get; }

    /// <summary>The launch policy.</summary>
    public GuestPolicy Policy { get; }

    /// <summary>FAMILY_ID from the ID block (16 bytes).</summary>
    public ReadOnlyMemory<byte> FamilyId => Slice(0x10, 16);

    /// <summary>IMAGE_ID from the ID block (16 bytes).</summary>
    public ReadOnlyMemory<byte> ImageId => Slice(0x20, 16);

    /// <summary>The VM privilege level that requested the report (0 is the most privileged).</summary>
    public uint Vmpl { get; }

    /// <summary>Signature algorithm; always <see cref="EcdsaP384Sha384"/> for a parsed report.</summary>
    public uint SignatureAlgorithm { get; }

    /// <summary>The platform's current TCB.</summary>
    public TcbVersion CurrentTcb { get; }

    /// <summary>Platform state when the report was made.</summary>
    public SnpPlatformInfo PlatformInfo { get; }

    /// <summary>Signer information: signing key, chip-ID masking, author key.</summary>
    public SnpSignerInfo SignerInfo { get; }

    /// <summary>The 64 bytes the guest supplied when requesting the report.</summary>
    public ReadOnlyMemory<byte> ReportData => Slice(0x50, 64);

    /// <summary>The launch measurement (SHA-384, 48 bytes).</summary>
    public ReadOnlyMemory<byte> Measurement => Slice(0x90, 48);

    /// <summary>Data the host supplied at launch (32 bytes).</summary>
    public ReadOnlyMemory<byte> HostData => Slice(0xC0, 32);

    /// <summary>SHA-384 of the ID block's public key (zero without an ID block).</summary>
    public ReadOnlyMemory<byte> IdKeyDigest => Slice(0xE0, 48);

    /// <summary>SHA-384 of the author key that certified the ID key (zero without one).</summary>
    public ReadOnlyMemory<byte> AuthorKeyDigest => Slice(0x110, 48);

    /// <summary>The guest's report ID (32 bytes).</summary>
    public ReadOnlyMemory<byte> ReportId => Slice(0x140, 32);

    /// <summary>The report ID of the guest's migration agent; all 0xFF when there is none.</summary>
    public ReadOnlyMemory<byte> ReportIdMa => Slice(0x160, 32);

    /// <summary>The TCB the report is signed under: the VCEK/VLEK certifies exactly this TCB.</summary>
    public TcbVersion ReportedTcb { get; }

    /// <summary>CPUID family/model/stepping (version 3 and later), else null.</summary>
    public SnpCpuid? Cpuid { get; }

    /// <summary>The product line the CPUID names, or null (version 2 report or unknown CPU).</summary>
    public string? Product { get; }

    /// <summary>The TCB layout used to read the TCB fields.</summary>
    public TcbLayout Layout { get; }

    /// <summary>The chip identifier (64 bytes; zero when masked or signed by a VLEK).</summary>
    public ReadOnlyMemory<byte> ChipId => Slice(0x1A0, 64);

    /// <summary>The committed TCB: the platform cannot roll back below it.</summary>
    public TcbVersion CommittedTcb { get; }

    /// <summary>The running SNP firmware version.</summary>
    public SnpFirmwareVersion CurrentFirmware { get; }

    /// <summary>The committed SNP firmware version.</summary>
    public SnpFirmwareVersion CommittedFirmware { get; }

    /// <summary>The committed TCB when the guest was launched or imported.</summary>
    public TcbVersion LaunchTcb { get; }

    /// <summary>Verified mitigation vector at launch (version 5 and later), else null.</summary>
    public ulong? LaunchMitigationVector { get; }

    /// <summary>Current verified mitigation vector (version 5 and later), else null.</summary>
    public ulong? CurrentMitigationVector { get; }

    /// <summary>Signature component R, 72 bytes little-endian as in the ABI.</summary>
    public ReadOnlyMemory<byte> SignatureR => Slice(SignatureOffset, SignatureComponentSize);

    /// <summary>Signature component S, 72 bytes little-endian as in the ABI.</summary>
    public ReadOnlyMemory<byte> SignatureS => Slice(SignatureOffset + SignatureComponentSize, SignatureComponentSize);

    /// <summary>Parses a report.</summary>
    /// <exception cref="EvidenceFormatException">The bytes are not a well-formed report; the exception names the field.</exception>
    public static SnpReport Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new EvidenceFormatException("length", $"an SEV-SNP attestation report is exactly {Size} bytes, got {bytes.Length}");
        }

        return new SnpReport(bytes.ToArray());
    }

    /// <summary>
    /// The signature in IEEE P1363 form (R ‖ S, 48 bytes each, big-endian), or null when either
    /// component does not fit in 48 bytes and so cannot be a P-384 signature.
    /// </summary>
    public byte[]? SignatureP1363()
    {
        var r = SignatureR.Span;
        var s = SignatureS.Span;
        if (r[48..].ContainsAnyExcept((byte)0) || s[48..].ContainsAnyExcept((byte)0))
        {
            return null;
        }

        var result = new byte[96];
        r[..48].CopyTo(result);
        s[..48].CopyTo(result.AsSpan(48));
        result.AsSpan(0, 48).Reverse();
        result.AsSpan(48, 48).Reverse();
        return result;
    }

    private ReadOnlyMemory<byte> Slice(int offset, int length) => _raw.AsMemory(offset, length);

    private TcbVersion Tcb(ReadOnlySpan<byte> span, int offset, string field)
    {
        var tcb = TcbVersion.Read(span.Slice(offset, 8), Layout);

        // Turin's reserved TCB bytes are plain reserved; the Milan/Genoa ones are certified SPLs.
        if (Layout == TcbLayout.Turin && tcb.ReservedBytes.ContainsAnyExcept((byte)0))
        {
            throw new EvidenceFormatException(field, "reserved bytes 4-6 of a Turin TCB_VERSION must be zero");
        }

        return tcb;
    }

    private static void RequireZero(ReadOnlySpan<byte> span, int start, int end, string field)
    {
        var index = span[start..end].IndexOfAnyExcept((byte)0);
        if (index >= 0)
        {
            throw new EvidenceFormatException(field, $"reserved bytes 0x{start:x}-0x{end - 1:x} must be zero (byte 0x{start + index:x} is 0x{span[start + index]:x2})");
        }
    }

    private static uint U32(ReadOnlySpan<byte> span, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(span[offset..]);

    private static ulong U64(ReadOnlySpan<byte> span, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(span[offset..]);
}
