using System.Text.Json;
using static Morphisms.Attestation.Collateral.CollateralJson;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Intel TCB info for one FMSPC (the <c>tcbInfo</c> value of Intel PCS's <c>/tcb</c> answer): the
/// platform TCB levels and, for TDX, the expected TDX module identity. Versions 2 (SGX, component keys
/// <c>sgxtcbcompNNsvn</c>, no <c>id</c>) and 3 (SGX or TDX, component arrays) are read.
/// </summary>
public sealed record TcbInfo
{
    /// <summary>The <c>id</c> field (<c>SGX</c> or <c>TDX</c>); null in version 2, which is SGX only.</summary>
    public string? Id { get; init; }

    /// <summary>The TEE this TCB info is for.</summary>
    public required TeeType Tee { get; init; }

    /// <summary>Document version, 2 or 3.</summary>
    public required int Version { get; init; }

    /// <summary>When Intel issued this TCB info.</summary>
    public required DateTimeOffset IssueDate { get; init; }

    /// <summary>When the next TCB info is due; after this the document is expired.</summary>
    public required DateTimeOffset NextUpdate { get; init; }

    /// <summary>The FMSPC (family-model-stepping-platform-custom SKU), 6 bytes.</summary>
    public required byte[] Fmspc { get; init; }

    /// <summary>The PCE ID, 2 bytes.</summary>
    public required byte[] PceId { get; init; }

    /// <summary>The TCB type; only 0 exists (component order as in the PCK certificate).</summary>
    public required int TcbType { get; init; }

    /// <summary>Intel's TCB recovery event number this document reflects.</summary>
    public required int TcbEvaluationDataNumber { get; init; }

    /// <summary>TDX only: the expected TDX module signer and attributes (<c>tdxModule</c>).</summary>
    public TdxModuleIdentity? TdxModule { get; init; }

    /// <summary>TDX only: per-major-version module identities with their own TCB levels (<c>tdxModuleIdentities</c>); empty when absent.</summary>
    public IReadOnlyList<TdxModuleIdentity> TdxModuleIdentities { get; init; } = [];

    /// <summary>The platform TCB levels in document order (Intel lists the newest first).</summary>
    public required IReadOnlyList<TcbLevel> TcbLevels { get; init; }

    /// <summary>The FMSPC as lowercase hex.</summary>
    public string FmspcHex => Hex.Of(Fmspc);

    /// <summary>True when this TCB info is for <paramref name="fmspcHex"/> (compared case-insensitively: Intel's files mix cases).</summary>
    public bool IsForFmspc(string fmspcHex) => string.Equals(FmspcHex, fmspcHex.Trim(), StringComparison.OrdinalIgnoreCase);

    /// <summary>Parses the exact <c>tcbInfo</c> JSON value.</summary>
    /// <exception cref="EvidenceFormatException">The JSON is malformed or a field is missing or invalid; the message names the field.</exception>
    public static TcbInfo Parse(ReadOnlyMemory<byte> body)
    {
        using var document = CollateralJson.Parse(body, "tcbInfo");
        return Parse(document.RootElement);
    }

    internal static TcbInfo Parse(JsonElement root)
    {
        const string path = "tcbInfo";
        RequireObject(root, path);
        var version = (int)Integer(root, "version", path, 0, int.MaxValue);
        if (version is not (2 or 3))
        {
            throw new EvidenceFormatException("tcbInfo.version", $"version {version} is not supported (2 and 3 are)");
        }

        string? id = null;
        TeeType tee;
        if (version == 3)
        {
            id = String(root, "id", path);
            tee = id switch
            {
                "SGX" => TeeType.Sgx,
                "TDX" => TeeType.Tdx,
                _ => throw new EvidenceFormatException("tcbInfo.id", $"'{id}' is neither SGX nor TDX"),
            };
        }
        else
        {
            // Version 2 predates TDX and carries no id; an id other than SGX would mean a forged or mixed document.
            if (TryProperty(root, "id", out _) && String(root, "id", path) != "SGX")
            {
                throw new EvidenceFormatException("tcbInfo.id", "a version 2 TCB info can only be for SGX");
            }

            tee = TeeType.Sgx;
        }

        var tcbType = (int)Integer(root, "tcbType", path, 0, int.MaxValue);
        if (tcbType != 0)
        {
            throw new EvidenceFormatException("tcbInfo.tcbType", $"TCB type {tcbType} is not supported (only 0 is defined)");
        }

        TdxModuleIdentity? tdxModule = null;
        var moduleIdentities = new List<TdxModuleIdentity>();
        if (tee == TeeType.Tdx)
        {
            tdxModule = ParseModule(RequireObject(Property(root, "tdxModule", path), "tcbInfo.tdxModule"), "tcbInfo.tdxModule", withLevels: false);
            if (TryProperty(root, "tdxModuleIdentities", out _))
            {
                var i = 0;
                foreach (var item in Array(root, "tdxModuleIdentities", path).EnumerateArray())
                {
                    var itemPath = $"tcbInfo.tdxModuleIdentities[{i++}]";
                    moduleIdentities.Add(ParseModule(RequireObject(item, itemPath), itemPath, withLevels: true));
                }
            }
        }

        var levels = new List<TcbLevel>();
        var index = 0;
        foreach (var item in Array(root, "tcbLevels", path).EnumerateArray())
        {
            var itemPath = $"tcbInfo.tcbLevels[{index++}]";
            levels.Add(ParseLevel(RequireObject(item, itemPath), itemPath, version, tee));
        }

        if (levels.Count == 0)
        {
            throw new EvidenceFormatException("tcbInfo.tcbLevels", "no TCB levels");
        }

        var issue = Date(root, "issueDate", path);
        var next = Date(root, "nextUpdate", path);
        if (next < issue)
        {
            throw new EvidenceFormatException("tcbInfo.nextUpdate", "is before issueDate");
        }

        return new TcbInfo
        {
            Id = id,
            Tee = tee,
            Version = version,
            IssueDate = issue,
            NextUpdate = next,
            Fmspc = HexBytes(root, "fmspc", path, 6),
            PceId = HexBytes(root, "pceId", path, 2),
            TcbType = tcbType,
            TcbEvaluationDataNumber = (int)Integer(root, "tcbEvaluationDataNumber", path, 0, int.MaxValue),
            TdxModule = tdxModule,
            TdxModuleIdentities = moduleIdentities,
            TcbLevels = levels,
        };
    }

    private static TcbLevel ParseLevel(JsonElement level, string path, int version, TeeType tee)
    {
        var tcbPath = $"{path}.tcb";
        var tcb = RequireObject(Property(level, "tcb", path), tcbPath);
        var sgx = new byte[16];
        byte[]? tdx = null;
        if (version == 2)
        {
            for (var i = 0; i < 16; i++)
            {
                sgx[i] = (byte)Integer(tcb, $"sgxtcbcomp{i + 1:D2}svn", tcbPath, 0, 255);
            }
        }
        else
        {
            sgx = ParseComponents(tcb, "sgxtcbcomponents", tcbPath);
            if (tee == TeeType.Tdx)
            {
                tdx = ParseComponents(tcb, "tdxtcbcomponents", tcbPath);
            }
        }

        return new TcbLevel(
            sgx,
            (ushort)Integer(tcb, "pcesvn", tcbPath, 0, ushort.MaxValue),
            tdx,
            Date(level, "tcbDate", path),
            String(level, "tcbStatus", path),
            OptionalStrings(level, "advisoryIDs", path));
    }

    private static byte[] ParseComponents(JsonElement tcb, string name, string path)
    {
        var array = Array(tcb, name, path);
        if (array.GetArrayLength() != 16)
        {
            throw new EvidenceFormatException($"{path}.{name}", $"expected 16 components, found {array.GetArrayLength()}");
        }

        var svns = new byte[16];
        var i = 0;
        foreach (var component in array.EnumerateArray())
        {
            var componentPath = $"{path}.{name}[{i}]";
            svns[i++] = (byte)Integer(RequireObject(component, componentPath), "svn", componentPath, 0, 255);
        }

        return svns;
    }

    private static TdxModuleIdentity ParseModule(JsonElement module, string path, bool withLevels)
    {
        var levels = new List<EnclaveTcbLevel>();
        string? id = null;
        if (withLevels)
        {
            id = String(module, "id", path);
            var i = 0;
            foreach (var item in Array(module, "tcbLevels", path).EnumerateArray())
            {
                levels.Add(EnclaveIdentity.ParseLevel(RequireObject(item, $"{path}.tcbLevels[{i}]"), $"{path}.tcbLevels[{i}]"));
                i++;
            }
        }

        return new TdxModuleIdentity(
            id,
            HexBytes(module, "mrsigner", path, 48),
            HexBytes(module, "attributes", path, 8),
            HexBytes(module, "attributesMask", path, 8),
            [.. levels.OrderByDescending(l => l.IsvSvn)]);
    }
}
