using System.Text.Json;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// DCAP collateral from local files, for tests, air-gapped sites and <c>morph evidence verify
/// --collateral</c>. Three shapes (see <c>docs/collateral.md</c>): a directory of Intel PCS files,
/// one bundle file, or explicitly named files. Files are read once, when the store is opened; the
/// store never reads the clock — the verifier decides whether what it returns is current.
/// </summary>
public sealed class OfflineCollateralStore : ICollateralSource
{
    /// <summary>Larger files are refused: real collateral items are a few kilobytes.</summary>
    public const int MaxFileBytes = 4 * 1024 * 1024;

    private static readonly string[] BinaryExtensions = [".der", ".crl", ".pem", ".cer", ".crt"];

    private readonly Func<DcapCollateralRequest, DcapCollateral?> _select;

    private OfflineCollateralStore(string origin, Func<DcapCollateralRequest, DcapCollateral?> select)
    {
        Origin = origin;
        _select = select;
    }

    /// <summary>The directory or file(s) this store reads.</summary>
    public string Origin { get; }

    /// <summary>True for a directory with no collateral file in it: the store answers nothing, which a caller may want to refuse.</summary>
    public bool IsEmpty { get; private init; }

    /// <summary>Opens a directory (every collateral file in it, not recursive) or a single bundle/document file.</summary>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>.</exception>
    /// <exception cref="EvidenceFormatException">A collateral file is malformed; the message names the file and the field.</exception>
    public static OfflineCollateralStore Open(string path)
    {
        if (Directory.Exists(path))
        {
            return OpenDirectory(path);
        }

        if (File.Exists(path))
        {
            return OpenFile(path);
        }

        throw new FileNotFoundException($"collateral: no such file or directory: {path}", path);
    }

    /// <summary>A store that returns exactly the named files, whatever the request (the verifier reports any mismatch).</summary>
    /// <exception cref="FileNotFoundException">A named file does not exist.</exception>
    /// <exception cref="EvidenceFormatException">A file is malformed; the message names the file and the field.</exception>
    public static OfflineCollateralStore FromFiles(CollateralFiles files)
    {
        var collateral = new DcapCollateral
        {
            TcbInfo = files.TcbInfo is { } tcb ? ReadDocument(tcb, CollateralDocumentKind.TcbInfo) : null,
            QeIdentity = files.QeIdentity is { } qe ? ReadDocument(qe, CollateralDocumentKind.EnclaveIdentity) : null,
            PckCrl = files.PckCrl is { } pck ? ReadCrl(pck) : null,
            RootCaCrl = files.RootCaCrl is { } root ? ReadCrl(root) : null,
            TcbSigningCertificates = [.. files.SigningCertificates.SelectMany(f => CollateralEncoding.ParseCertificateFile(ReadBytes(f), f))],
        };
        var names = new[] { files.TcbInfo, files.QeIdentity, files.PckCrl, files.RootCaCrl }
            .Concat(files.SigningCertificates).OfType<string>();
        var origin = string.Join(", ", names);
        collateral = collateral with { Origin = origin };
        return new OfflineCollateralStore(origin, _ => collateral);
    }

    /// <inheritdoc />
    public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Tee is not (TeeType.Sgx or TeeType.Tdx))
        {
            throw new ArgumentException("DCAP collateral exists for SGX and TDX only", nameof(request));
        }

        return ValueTask.FromResult(_select(request));
    }

    private static OfflineCollateralStore OpenDirectory(string directory)
    {
        var catalog = new CollateralCatalog();
        foreach (var file in Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal))
        {
            var extension = Path.GetExtension(file).ToLowerInvariant();
            if (extension == ".json")
            {
                AddJsonFile(catalog, file);
            }
            else if (BinaryExtensions.Contains(extension))
            {
                var bytes = ReadBytes(file);
                if (CollateralEncoding.LooksLikeCrl(bytes))
                {
                    catalog.AddCrl(CollateralEncoding.DecodeFile(bytes, file), file);
                }
                else
                {
                    catalog.AddCertificates(CollateralEncoding.ParseCertificateFile(bytes, file));
                }
            }
        }

        return new OfflineCollateralStore(directory, request => catalog.Select(request, directory)) { IsEmpty = catalog.IsEmpty };
    }

    private static void AddJsonFile(CollateralCatalog catalog, string file)
    {
        var bytes = ReadBytes(file);
        using var document = ParseJson(bytes, file);
        var root = document.RootElement;
        if (IntelCollateralDocument.Detect(root) is { } kind)
        {
            catalog.AddDocument(Wrap(() => IntelCollateralDocument.FromElement(root, kind), file), kind, file);
        }
        else if (CollateralBundle.IsBundle(root))
        {
            catalog.AddBundle(Wrap(() => CollateralBundle.ReadContents(root), file), file);
        }

        // Any other JSON (notes, manifests) is not collateral and is left alone.
    }

    private static OfflineCollateralStore OpenFile(string file)
    {
        var bytes = ReadBytes(file);
        using var document = ParseJson(bytes, file);
        var root = document.RootElement;
        if (CollateralBundle.IsBundle(root))
        {
            var contents = Wrap(() => CollateralBundle.ReadContents(root), file);
            return new OfflineCollateralStore(file, request => contents.ToCollateral(request.CaType, file));
        }

        if (IntelCollateralDocument.Detect(root) is { } kind)
        {
            var signed = Wrap(() => IntelCollateralDocument.FromElement(root, kind), file);
            var single = kind == CollateralDocumentKind.TcbInfo
                ? new DcapCollateral { TcbInfo = signed, Origin = file }
                : new DcapCollateral { QeIdentity = signed, Origin = file };
            return new OfflineCollateralStore(file, _ => single);
        }

        throw new EvidenceFormatException(file, "not a collateral bundle, TCB info or enclave identity document");
    }

    private static SignedCollateralJson ReadDocument(string file, CollateralDocumentKind kind)
    {
        var bytes = ReadBytes(file);
        return Wrap(() => IntelCollateralDocument.Parse(bytes, kind), file);
    }

    private static byte[] ReadCrl(string file)
    {
        var der = CollateralEncoding.DecodeFile(ReadBytes(file), file);
        return CollateralEncoding.ParseCrl(der, file).RawData;
    }

    private static JsonDocument ParseJson(byte[] bytes, string file)
    {
        try
        {
            return JsonDocument.Parse(CollateralJson.StripBom(bytes), CollateralJson.Options);
        }
        catch (JsonException e)
        {
            throw new EvidenceFormatException(file, $"malformed JSON ({e.Message})");
        }
    }

    private static T Wrap<T>(Func<T> read, string file)
    {
        try
        {
            return read();
        }
        catch (EvidenceFormatException e)
        {
            throw new EvidenceFormatException(file, e.Message);
        }
    }

    private static byte[] ReadBytes(string file)
    {
        var info = new FileInfo(file);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"collateral: no such file: {file}", file);
        }

        if (info.Length > MaxFileBytes)
        {
            throw new EvidenceFormatException(file, $"{info.Length} bytes is too large for a collateral file (limit {MaxFileBytes})");
        }

        // The length is not the whole story: /dev/zero, a pipe or a FIFO says 0 and never ends.
        return BoundedFile.TryReadAllBytes(file, MaxFileBytes, out var bytes)
            ? bytes
            : throw new EvidenceFormatException(file, $"more than {MaxFileBytes} bytes is too large for a collateral file (limit {MaxFileBytes})");
    }
}
