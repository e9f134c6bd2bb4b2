namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>
/// The 48-byte header every DCAP quote starts with. In v3 the <see cref="TeeTypeValue"/> field was
/// reserved (always 0, SGX); from v4 on it says whether an SGX or a TD report follows.
/// </summary>
public sealed record QuoteHeader
{
    /// <summary>Size of the header on the wire.</summary>
    public const int Size = 48;

    /// <summary>Attestation key type 2: ECDSA-256 with the P-256 curve, the only one DCAP quotes use in practice.</summary>
    public const ushort AttestationKeyTypeEcdsaP256 = 2;

    /// <summary>tee_type value of an SGX quote.</summary>
    public const uint TeeTypeSgx = 0x00;

    /// <summary>tee_type value of a TDX quote.</summary>
    public const uint TeeTypeTdx = 0x81;

    /// <summary>Quote format version: 3, 4 or 5.</summary>
    public required ushort Version { get; init; }

    /// <summary>Attestation key type (2 = ECDSA-P256).</summary>
    public required ushort AttestationKeyType { get; init; }

    /// <summary>Raw tee_type (0 = SGX, 0x81 = TDX).</summary>
    public required uint TeeTypeValue { get; init; }

    /// <summary>Security version of the quoting enclave (0 in TDX quotes, where it is reserved).</summary>
    public required ushort QeSvn { get; init; }

    /// <summary>Security version of the provisioning certification enclave (0 in TDX quotes).</summary>
    public required ushort PceSvn { get; init; }

    /// <summary>QE vendor ID, 16 bytes (Intel's is <c>939a7233f79c4ca9940a0db3957f0607</c>).</summary>
    public required ReadOnlyMemory<byte> QeVendorId { get; init; }

    /// <summary>User data, 20 bytes (the first 16 are the platform's QE identifier for Intel's QE).</summary>
    public required ReadOnlyMemory<byte> UserData { get; init; }

    /// <summary>The TEE the header announces.</summary>
    public TeeType Tee => TeeTypeValue == TeeTypeTdx ? TeeType.Tdx : TeeType.Sgx;

    internal static QuoteHeader Read(ref WireReader reader)
    {
        var version = reader.ReadUInt16("quote.header.version");
        if (version is not (3 or 4 or 5))
        {
            throw new EvidenceFormatException("quote.header.version", $"unsupported quote version {version} (supported: 3, 4, 5)");
        }

        var keyType = reader.ReadUInt16("quote.header.att_key_type");
        if (keyType != AttestationKeyTypeEcdsaP256)
        {
            throw new EvidenceFormatException("quote.header.att_key_type",
                $"unsupported attestation key type {keyType} (supported: 2 = ECDSA-P256)");
        }

        var teeType = reader.ReadUInt32("quote.header.tee_type");
        if (teeType is not (TeeTypeSgx or TeeTypeTdx) || (version == 3 && teeType != TeeTypeSgx))
        {
            throw new EvidenceFormatException("quote.header.tee_type",
                $"unsupported tee_type 0x{teeType:x} for quote version {version} (supported: 0x0 = SGX{(version == 3 ? string.Empty : ", 0x81 = TDX")})");
        }

        return new QuoteHeader
        {
            Version = version,
            AttestationKeyType = keyType,
            TeeTypeValue = teeType,
            QeSvn = reader.ReadUInt16("quote.header.qe_svn"),
            PceSvn = reader.ReadUInt16("quote.header.pce_svn"),
            QeVendorId = reader.ReadBytes(16, "quote.header.qe_vendor_id"),
            UserData = reader.ReadBytes(20, "quote.header.user_data"),
        };
    }
}
