using System.Buffers.Binary;
using System.Text.Json;
using static Morphisms.Attestation.Collateral.CollateralJson;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Intel's identity of one of its architectural enclaves (the <c>enclaveIdentity</c> value of PCS's
/// <c>/qe/identity</c> answers): the SGX quoting enclave (<c>QE</c>), the TDX quoting enclave
/// (<c>TD_QE</c>) or the quote verification enclave (<c>QVE</c>). Version 2.
/// </summary>
public sealed record EnclaveIdentity
{
    /// <summary>The enclave id: <c>QE</c>, <c>QVE</c> or <c>TD_QE</c>.</summary>
    public required string Id { get; init; }

    /// <summary>Document version (2).</summary>
    public required int Version { get; init; }

    /// <summary>When Intel issued this identity.</summary>
    public required DateTimeOffset IssueDate { get; init; }

    /// <summary>When the next identity is due; after this the document is expired.</summary>
    public required DateTimeOffset NextUpdate { get; init; }

    /// <summary>Intel's TCB recovery event number this document reflects.</summary>
    public required int TcbEvaluationDataNumber { get; init; }

    /// <summary>
    /// Expected MISCSELECT after masking. The hex in the JSON lists the bytes in report order, so the
    /// value is read little-endian, as the MISCSELECT field of a report is.
    /// </summary>
    public required uint MiscSelect { get; init; }

    /// <summary>Mask applied to the report's MISCSELECT before comparing (read like <see cref="MiscSelect"/>).</summary>
    public required uint MiscSelectMask { get; init; }

    /// <summary>Expected ATTRIBUTES after masking, 16 bytes.</summary>
    public required byte[] Attributes { get; init; }

    /// <summary>Mask applied to the report's ATTRIBUTES before comparing, 16 bytes.</summary>
    public required byte[] AttributesMask { get; init; }

    /// <summary>Expected MRSIGNER, 32 bytes.</summary>
    public required byte[] MrSigner { get; init; }

    /// <summary>Expected ISVPRODID.</summary>
    public required ushort IsvProdId { get; init; }

    /// <summary>TCB levels by ISV SVN, highest first.</summary>
    public required IReadOnlyList<EnclaveTcbLevel> TcbLevels { get; init; }

    /// <summary>The TEE whose quotes this enclave signs: SGX for <c>QE</c>/<c>QVE</c>, TDX for <c>TD_QE</c>.</summary>
    public TeeType Tee => Id == "TD_QE" ? TeeType.Tdx : TeeType.Sgx;

    /// <summary>Parses the exact <c>enclaveIdentity</c> JSON value.</summary>
    /// <exception cref="EvidenceFormatException">The JSON is malformed or a field is missing or invalid; the message names the field.</exception>
    public static EnclaveIdentity Parse(ReadOnlyMemory<byte> body)
    {
        using var document = CollateralJson.Parse(body, "enclaveIdentity");
        return Parse(document.RootElement);
    }

    internal static EnclaveIdentity Parse(JsonElement root)
    {
        const string path = "enclaveIdentity";
        RequireObject(root, path);
        var version = (int)Integer(root, "version", path, 0, int.MaxValue);
        if (version != 2)
        {
            throw new EvidenceFormatException("enclaveIdentity.version", $"version {version} is not supported (2 is)");
        }

        var id = String(root, "id", path);
        if (id is not ("QE" or "QVE" or "TD_QE"))
        {
            throw new EvidenceFormatException("enclaveIdentity.id", $"'{id}' is not QE, QVE or TD_QE");
        }

        var levels = new List<EnclaveTcbLevel>();
        var i = 0;
        foreach (var item in Array(root, "tcbLevels", path).EnumerateArray())
        {
            var itemPath = $"enclaveIdentity.tcbLevels[{i++}]";
            levels.Add(ParseLevel(RequireObject(item, itemPath), itemPath));
        }

        if (levels.Count == 0)
        {
            throw new EvidenceFormatException("enclaveIdentity.tcbLevels", "no TCB levels");
        }

        var issue = Date(root, "issueDate", path);
        var next = Date(root, "nextUpdate", path);
        if (next < issue)
        {
            throw new EvidenceFormatException("enclaveIdentity.nextUpdate", "is before issueDate");
        }

        return new EnclaveIdentity
        {
            Id = id,
            Version = version,
            IssueDate = issue,
            NextUpdate = next,
            TcbEvaluationDataNumber = (int)Integer(root, "tcbEvaluationDataNumber", path, 0, int.MaxValue),
            MiscSelect = BinaryPrimitives.ReadUInt32LittleEndian(HexBytes(root, "miscselect", path, 4)),
            MiscSelectMask = BinaryPrimitives.ReadUInt32LittleEndian(HexBytes(root, "miscselectMask", path, 4)),
            Attributes = HexBytes(root, "attributes", path, 16),
            AttributesMask = HexBytes(root, "attributesMask", path, 16),
            MrSigner = HexBytes(root, "mrsigner", path, 32),
            IsvProdId = (ushort)Integer(root, "isvprodid", path, 0, ushort.MaxValue),
            TcbLevels = [.. levels.OrderByDescending(l => l.IsvSvn)],
        };
    }

    internal static EnclaveTcbLevel ParseLevel(JsonElement level, string path)
    {
        var tcb = RequireObject(Property(level, "tcb", path), $"{path}.tcb");
        return new EnclaveTcbLevel(
            (ushort)Integer(tcb, "isvsvn", $"{path}.tcb", 0, ushort.MaxValue),
            Date(level, "tcbDate", path),
            String(level, "tcbStatus", path),
            OptionalStrings(level, "advisoryIDs", path));
    }
}
