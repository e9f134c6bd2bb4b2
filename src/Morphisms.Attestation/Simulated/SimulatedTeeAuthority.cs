using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Simulated;

/// <summary>
/// The simulated TEE for machines without TEE hardware. It plays the AMD secure processor and the
/// Intel quoting enclave: it emits evidence in the real SEV-SNP report and SGX DCAP quote formats,
/// signed under roots generated once per installation, together with the certificates and signed
/// collateral a verifier needs. Verifiers accept it only when told to trust <see cref="AmdRoots"/>
/// and <see cref="IntelRoot"/> (dev mode), and then mark every result simulated.
/// </summary>
public sealed partial class SimulatedTeeAuthority : IDisposable
{
    /// <summary>The SNP product name of the simulated platform (certificate CNs "ARK-Simulated", "SEV-Simulated").</summary>
    public const string SnpProduct = "Simulated";

    /// <summary>SNP guest policy used unless a request says otherwise: ABI 0.0, SMT allowed, reserved bit 17 set, no debug, no migration agent.</summary>
    public const ulong DefaultSnpPolicy = 0x30000;

    /// <summary>
    /// The file, in the state directory, that holds the keys and certificates: all a process needs to load the simulated
    /// TEE (the serving sandbox shows instances this file and not the rest of the directory).
    /// </summary>
    public const string StateFileName = "simulated-tee.json";
    private static readonly byte[] QeVendorId = Convert.FromHexString("939A7233F79C4CA9940A0DB3957F0607");

    private readonly State _state;
    private readonly Keys _keys;
    private readonly Lazy<AmdProductRoots> _amdRoots;
    private readonly Lazy<IntelRoot> _intelRoot;

    private SimulatedTeeAuthority(State state)
    {
        _state = state;
        _keys = Keys.Load(state);
        _amdRoots = new(() => new AmdProductRoots(SnpProduct, _keys.Ark, _keys.Ask, Asvk: null, Simulated: true));
        _intelRoot = new(() => new IntelRoot(_keys.SgxRoot, Simulated: true));
    }

    /// <summary>The simulated AMD roots, to pass to <see cref="TrustAnchors.WithSimulated"/>.</summary>
    public AmdProductRoots AmdRoots => _amdRoots.Value;

    /// <summary>The simulated Intel SGX root, to pass to <see cref="TrustAnchors.WithSimulated"/>.</summary>
    public IntelRoot IntelRoot => _intelRoot.Value;

    /// <summary>The simulated VCEK that signs SNP reports (give it to the verifier as the endorsement).</summary>
    public X509Certificate2 Vcek => _keys.Vcek;

    /// <summary>The simulated platform's chip ID (the VCEK's hwID).</summary>
    public byte[] ChipId => Convert.FromHexString(_state.ChipId);

    /// <summary>The SNP TCB the simulated platform reports and its VCEK certifies.</summary>
    public SimulatedTcb SnpTcb { get; } = new(Bootloader: 4, Tee: 0, Snp: 22, Microcode: 213);

    /// <summary>The SGX platform the simulated PCK certificate describes.</summary>
    public SimulatedPlatform SgxPlatform => Platform;

    /// <summary>SHA-256 of the simulated SNP root (ARK) certificate, for logs and for pinning it.</summary>
    public string Fingerprint => Convert.ToHexStringLower(SHA256.HashData(_keys.Ark.RawData));

    private static SimulatedPlatform Platform { get; } = new(
        Fmspc: Convert.FromHexString("F0F0F0000000"),
        PceId: [0, 0],
        Ppid: SHA256.HashData("morphisms simulated ppid"u8)[..16],
        SgxTcbComponents: [14, 14, 3, 3, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        PceSvn: 13);

    /// <summary>The trust anchors to use in dev mode: the real vendor roots plus this simulated TEE's.</summary>
    public TrustAnchors TrustedWith(TrustAnchors vendor) => vendor.WithSimulated(AmdRoots, IntelRoot);

    /// <summary>Parses every certificate and the chip ID of the state, throwing when one is malformed.</summary>
    private void CheckCertificates()
    {
        _ = ChipId;
        _ = (_keys.Ark, _keys.Ask, _keys.Vcek, _keys.SgxRoot, _keys.PckCa, _keys.Pck, _keys.TcbSigning);
    }

    /// <summary>Creates a new simulated TEE with fresh keys. Certificates are valid from <paramref name="time"/>'s now for ten years.</summary>
    public static SimulatedTeeAuthority Create(TimeProvider time) => new(State.Generate(time.GetUtcNow()));

    /// <summary>True when <paramref name="directory"/> holds a simulated TEE.</summary>
    public static bool Exists(string directory) => File.Exists(Path.Combine(directory, StateFileName));

    /// <summary>
    /// Loads an existing simulated TEE; unlike <see cref="LoadOrCreate(string, TimeProvider)"/> it never creates one, so
    /// trusting a directory can never mint a fresh root by accident.
    /// </summary>
    /// <exception cref="FileNotFoundException">No simulated TEE in <paramref name="directory"/>.</exception>
    /// <exception cref="InvalidDataException">The state file is not a simulated TEE's (corrupt JSON, a missing or malformed field); the message names it.</exception>
    public static SimulatedTeeAuthority Load(string directory)
    {
        var path = Path.Combine(directory, StateFileName);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"no simulated TEE in {directory}", path);
        }

        var bytes = File.ReadAllBytes(path);
        SimulatedTeeAuthority? authority = null;
        try
        {
            var state = JsonSerializer.Deserialize(bytes, StateJson.Default.State)
                ?? throw new InvalidDataException($"{path}: empty simulated TEE state");
            authority = new SimulatedTeeAuthority(state);
            // The certificates are otherwise parsed on first use: a broken file is reported here, naming it, rather than
            // as a bare parse error from whatever first needs a root.
            authority.CheckCertificates();
            return authority;
        }
        catch (Exception e) when (e is JsonException or CryptographicException or ArgumentException or FormatException)
        {
            authority?.Dispose();
            throw new InvalidDataException($"{path}: not a simulated TEE's state file ({e.Message})", e);
        }
    }

    /// <summary>
    /// Loads the installation's simulated TEE from <paramref name="directory"/>, creating it (mode 0600 from its first
    /// byte, see <see cref="PrivateFile.TryCreate(string, ReadOnlySpan{byte})"/>) on first use so that every process of one installation shares one
    /// simulated root. Processes creating it at once (<c>morph up</c> beside <c>morph kms server --dev</c> on a fresh
    /// install) each generate a root, but only one file is published and the others load it: were each to keep its
    /// own, the KMS would trust one root while instances sign under another.
    /// </summary>
    public static SimulatedTeeAuthority LoadOrCreate(string directory, TimeProvider time) => LoadOrCreate(directory, () => Create(time));

    /// <summary>
    /// <see cref="LoadOrCreate(string, TimeProvider)"/> with the new simulated TEE made by <paramref name="create"/>, so
    /// that tests can race many creators over a few roots generated beforehand (RSA key generation is the slow part).
    /// </summary>
    internal static SimulatedTeeAuthority LoadOrCreate(string directory, Func<SimulatedTeeAuthority> create)
    {
        if (Exists(directory))
        {
            return Load(directory);
        }

        var created = create();
        try
        {
            if (PrivateFile.TryCreate(Path.Combine(directory, StateFileName), JsonSerializer.SerializeToUtf8Bytes(created._state, StateJson.Default.State)))
            {
                return created;
            }
        }
        catch
        {
            created.Dispose();
            throw;
        }

        // Another process published its root first: use that one, as every other process of the installation will.
        created.Dispose();
        return Load(directory);
    }

    /// <summary>Produces a 1184-byte SEV-SNP attestation report (version 3) signed by the simulated VCEK.</summary>
    public byte[] CreateSnpReport(SimulatedSnpReportRequest request)
    {
        RequireLength(request.ReportData, 64, "report_data");
        RequireLength(request.Measurement, 48, "measurement");
        RequireLength(request.HostData, 32, "host_data");

        var report = new byte[0x4A0];
        var span = report.AsSpan();
        var tcb = SnpTcb.ToUInt64();
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x00..], 3);
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x04..], request.GuestSvn);
        BinaryPrimitives.WriteUInt64LittleEndian(span[0x08..], request.Policy);
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x30..], request.Vmpl);
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x34..], 1); // ECDSA P-384 with SHA-384
        BinaryPrimitives.WriteUInt64LittleEndian(span[0x38..], tcb); // current TCB
        BinaryPrimitives.WriteUInt64LittleEndian(span[0x40..], 1); // platform_info: SMT enabled
        request.ReportData.CopyTo(span[0x50..]);
        request.Measurement.CopyTo(span[0x90..]);
        request.HostData.CopyTo(span[0xC0..]);
        RandomNumberGenerator.Fill(span.Slice(0x140, 32)); // report_id
        span.Slice(0x160, 32).Fill(0xFF); // report_id_ma: no migration agent
        BinaryPrimitives.WriteUInt64LittleEndian(span[0x180..], tcb); // reported TCB
        ChipId.CopyTo(span[0x1A0..]);
        BinaryPrimitives.WriteUInt64LittleEndian(span[0x1E0..], tcb); // committed TCB
        span[0x1E8] = 7; // current build, minor, major
        span[0x1E9] = 55;
        span[0x1EA] = 1;
        span[0x1EC] = 7; // committed build, minor, major
        span[0x1ED] = 55;
        span[0x1EE] = 1;
        BinaryPrimitives.WriteUInt64LittleEndian(span[0x1F0..], tcb); // launch TCB

        var signature = _keys.SignWithVcek(report.AsSpan(0, 0x2A0));
        // AMD stores r and s little-endian, each zero-padded to 72 bytes.
        WriteLittleEndian(signature.AsSpan(0, 48), span.Slice(0x2A0, 72));
        WriteLittleEndian(signature.AsSpan(48, 48), span.Slice(0x2E8, 72));
        return report;
    }

    /// <summary>
    /// An AMD-format CRL (DER) signed by the simulated ARK, listing the simulated VCEK when <paramref name="revokeVcek"/>:
    /// revocation cannot be exercised with AMD's own CRLs, which only AMD can sign.
    /// </summary>
    public byte[] CreateSnpCrl(DateTimeOffset thisUpdate, DateTimeOffset nextUpdate, bool revokeVcek = false)
    {
        using var arkKey = RSA.Create();
        arkKey.ImportFromPem(_state.ArkKey);
        using var ark = _keys.Ark.CopyWithPrivateKey(arkKey);
        var builder = new CertificateRevocationListBuilder();
        if (revokeVcek)
        {
            builder.AddEntry(_keys.Vcek, thisUpdate);
        }

        return builder.Build(ark, 1, nextUpdate, HashAlgorithmName.SHA384, RSASignaturePadding.Pss, thisUpdate);
    }

    /// <summary>
    /// Produces an SGX DCAP quote (version 3, ECDSA P-256) over an enclave report, with a QE report
    /// signed by the simulated PCK key and the PCK certificate chain embedded (certification data type 5).
    /// </summary>
    public byte[] CreateSgxQuote(SimulatedSgxQuoteRequest request)
    {
        RequireLength(request.ReportData, 64, "report_data");
        RequireLength(request.MrEnclave, 32, "mrenclave");
        var mrSigner = request.MrSigner ?? SHA256.HashData("morphisms simulated enclave signer"u8);
        RequireLength(mrSigner, 32, "mrsigner");

        using var attestationKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var attestationPublic = RawPublicKey(attestationKey);

        var header = new byte[48];
        BinaryPrimitives.WriteUInt16LittleEndian(header, 3);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(2), 2); // ECDSA-256-with-P-256
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), QeIsvSvn);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(10), Platform.PceSvn);
        QeVendorId.CopyTo(header.AsSpan(12));
        SHA256.HashData(Encoding.ASCII.GetBytes(_state.ChipId)).AsSpan(0, 20).CopyTo(header.AsSpan(28));

        var flags = 0x05UL | (request.Debug ? 0x02UL : 0UL); // INIT | MODE64BIT (| DEBUG)
        var body = ReportBody(Platform.SgxTcbComponents, flags, request.MrEnclave, mrSigner, request.IsvProdId, request.IsvSvn, request.ReportData);

        var authData = new byte[32];
        for (var i = 0; i < authData.Length; i++)
        {
            authData[i] = (byte)i;
        }

        var qeReportData = new byte[64];
        SHA256.HashData([.. attestationPublic, .. authData]).CopyTo(qeReportData, 0);
        var qeReport = ReportBody(Platform.SgxTcbComponents, 0x11, QeMrEnclave, QeMrSigner, QeIsvProdId, QeIsvSvn, qeReportData);

        var qeSignature = _keys.SignWithPck(qeReport);
        var quoteSignature = attestationKey.SignData([.. header, .. body], HashAlgorithmName.SHA256);

        var chainPem = Encoding.ASCII.GetBytes(_keys.Pck.ExportCertificatePem() + "\n" + _keys.PckCa.ExportCertificatePem() + "\n" + _keys.SgxRoot.ExportCertificatePem() + "\n");
        using var signatureData = new MemoryStream();
        signatureData.Write(quoteSignature);
        signatureData.Write(attestationPublic);
        signatureData.Write(qeReport);
        signatureData.Write(qeSignature);
        WriteUInt16(signatureData, (ushort)authData.Length);
        signatureData.Write(authData);
        WriteUInt16(signatureData, 5); // certification data type 5: PCK certificate chain (PEM)
        WriteUInt32(signatureData, (uint)chainPem.Length);
        signatureData.Write(chainPem);

        using var quote = new MemoryStream();
        quote.Write(header);
        quote.Write(body);
        WriteUInt32(quote, (uint)signatureData.Length);
        signatureData.Position = 0;
        signatureData.CopyTo(quote);
        return quote.ToArray();
    }

    /// <summary>
    /// Signed collateral for the simulated SGX platform, in Intel's formats (TCB info v3, QE identity v2,
    /// CRLs), valid from <paramref name="now"/> for 30 days. <paramref name="platformStatus"/> and
    /// <paramref name="tcbEvaluationDataNumber"/> play a TCB recovery: the collateral from before it (a lower
    /// number, the platform UpToDate) and from after it (a higher number, the platform OutOfDate).
    /// </summary>
    public DcapCollateral CreateSgxCollateral(DateTimeOffset now, string platformStatus = TcbStatus.UpToDate, int tcbEvaluationDataNumber = 17)
    {
        var issue = now.AddMinutes(-1);
        var next = now.AddDays(30);
        using var signingKey = _keys.TcbSigningKey();
        var tcbInfo = TcbInfoJson(issue, next, platformStatus, tcbEvaluationDataNumber);
        var qeIdentity = QeIdentityJson(issue, next, tcbEvaluationDataNumber);
        using var rootWithKey = _keys.SgxRoot.CopyWithPrivateKey(_keys.SgxRootKey());
        using var pckCaWithKey = _keys.PckCa.CopyWithPrivateKey(_keys.PckCaKey());
        return new DcapCollateral
        {
            TcbInfo = new SignedCollateralJson(tcbInfo, signingKey.SignData(tcbInfo, HashAlgorithmName.SHA256)),
            QeIdentity = new SignedCollateralJson(qeIdentity, signingKey.SignData(qeIdentity, HashAlgorithmName.SHA256)),
            TcbSigningCertificates = [_keys.TcbSigning],
            PckCrl = SimulatedCertificates.EmptyCrl(pckCaWithKey, issue, next),
            RootCaCrl = SimulatedCertificates.EmptyCrl(rootWithKey, issue, next),
            Origin = "simulated TEE",
        };
    }

    /// <inheritdoc />
    public void Dispose() => _keys.Dispose();

    private const ushort QeIsvProdId = 1;
    private const ushort QeIsvSvn = 8;
    private static readonly byte[] QeMrEnclave = SHA256.HashData("morphisms simulated quoting enclave"u8);
    private static readonly byte[] QeMrSigner = SHA256.HashData("morphisms simulated quoting enclave signer"u8);

    private static byte[] ReportBody(byte[] cpuSvn, ulong flags, byte[] mrEnclave, byte[] mrSigner, ushort isvProdId, ushort isvSvn, byte[] reportData)
    {
        var body = new byte[384];
        var span = body.AsSpan();
        cpuSvn.CopyTo(span);
        BinaryPrimitives.WriteUInt64LittleEndian(span[48..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(span[56..], 0xE7); // XFRM
        mrEnclave.CopyTo(span[64..]);
        mrSigner.CopyTo(span[128..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[256..], isvProdId);
        BinaryPrimitives.WriteUInt16LittleEndian(span[258..], isvSvn);
        reportData.CopyTo(span[320..]);
        return body;
    }

    private static byte[] TcbInfoJson(DateTimeOffset issue, DateTimeOffset next, string platformStatus, int tcbEvaluationDataNumber)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", "SGX");
            json.WriteNumber("version", 3);
            json.WriteString("issueDate", IntelTime(issue));
            json.WriteString("nextUpdate", IntelTime(next));
            json.WriteString("fmspc", Convert.ToHexStringLower(Platform.Fmspc));
            json.WriteString("pceId", Convert.ToHexStringLower(Platform.PceId));
            json.WriteNumber("tcbType", 0);
            json.WriteNumber("tcbEvaluationDataNumber", tcbEvaluationDataNumber);
            json.WriteStartArray("tcbLevels");
            json.WriteStartObject();
            json.WriteStartObject("tcb");
            json.WriteStartArray("sgxtcbcomponents");
            foreach (var svn in Platform.SgxTcbComponents)
            {
                json.WriteStartObject();
                json.WriteNumber("svn", svn);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteNumber("pcesvn", Platform.PceSvn);
            json.WriteEndObject();
            json.WriteString("tcbDate", IntelTime(issue.AddDays(-1)));
            json.WriteString("tcbStatus", platformStatus);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static byte[] QeIdentityJson(DateTimeOffset issue, DateTimeOffset next, int tcbEvaluationDataNumber)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", "QE");
            json.WriteNumber("version", 2);
            json.WriteString("issueDate", IntelTime(issue));
            json.WriteString("nextUpdate", IntelTime(next));
            json.WriteNumber("tcbEvaluationDataNumber", tcbEvaluationDataNumber);
            json.WriteString("miscselect", "00000000");
            json.WriteString("miscselectMask", "FFFFFFFF");
            json.WriteString("attributes", "11000000000000000000000000000000");
            json.WriteString("attributesMask", "FBFFFFFFFFFFFFFF0000000000000000");
            json.WriteString("mrsigner", Convert.ToHexString(QeMrSigner));
            json.WriteNumber("isvprodid", QeIsvProdId);
            json.WriteStartArray("tcbLevels");
            json.WriteStartObject();
            json.WriteStartObject("tcb");
            json.WriteNumber("isvsvn", QeIsvSvn);
            json.WriteEndObject();
            json.WriteString("tcbDate", IntelTime(issue.AddDays(-1)));
            json.WriteString("tcbStatus", "UpToDate");
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static string IntelTime(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static byte[] RawPublicKey(ECDsa key)
    {
        var parameters = key.ExportParameters(false);
        return [.. parameters.Q.X!, .. parameters.Q.Y!];
    }

    private static void WriteLittleEndian(ReadOnlySpan<byte> bigEndian, Span<byte> destination)
    {
        destination.Clear();
        for (var i = 0; i < bigEndian.Length; i++)
        {
            destination[i] = bigEndian[bigEndian.Length - 1 - i];
        }
    }

    private static void WriteUInt16(Stream stream, ushort value)
    {
        Span<byte> buffer = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(buffer, value);
        stream.Write(buffer);
    }

    private static void WriteUInt32(Stream stream, uint value)
    {
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, value);
        stream.Write(buffer);
    }

    private static void RequireLength(byte[] value, int length, string field)
    {
        if (value.Length != length)
        {
            throw new ArgumentException($"{field} must be {length} bytes, got {value.Length}", field);
        }
    }

    // Source-generated (same property names as the reflection serializer wrote): no reflection at load, which is
    // on every simulated instance's cold start and unavailable to a NativeAOT morph-init.
    [System.Text.Json.Serialization.JsonSerializable(typeof(State))]
    private sealed partial class StateJson : System.Text.Json.Serialization.JsonSerializerContext;

    /// <summary>Serialisable key material of one installation's simulated TEE (PEM strings).</summary>
    private sealed record State(
        string ArkKey, string Ark, string AskKey, string Ask, string VcekKey, string Vcek, string ChipId,
        string SgxRootKey, string SgxRoot, string PckCaKey, string PckCa, string PckKey, string Pck,
        string TcbSigningKey, string TcbSigning)
    {
        public static State Generate(DateTimeOffset now)
        {
            var from = now.AddDays(-1);
            var until = now.AddYears(10);
            using var arkKey = RSA.Create(3072);
            using var askKey = RSA.Create(3072);
            using var vcekKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
            var chipId = RandomNumberGenerator.GetBytes(64);
            using var ark = SimulatedCertificates.SelfSignedRsaPss(arkKey, $"CN=ARK-{SnpProduct}, O=Morphisms Simulated TEE", from, until);
            using var ask = SimulatedCertificates.IssueRsaPssCa(ark, arkKey, askKey, $"CN=SEV-{SnpProduct}, O=Morphisms Simulated TEE", from, until);
            using var vcek = SimulatedCertificates.IssueVcek(ask, askKey, vcekKey, SnpProduct, new SimulatedTcb(4, 0, 22, 213), chipId, from, until);

            using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var pckCaKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var pckKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var tcbKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var root = SimulatedCertificates.SelfSignedEcdsa(rootKey, "CN=Morphisms Simulated SGX Root CA, O=Morphisms Simulated TEE", from, until);
            using var pckCa = SimulatedCertificates.IssueEcdsaCa(root, rootKey, pckCaKey, "CN=Intel SGX PCK Platform CA, O=Morphisms Simulated TEE", from, until);
            using var pck = SimulatedCertificates.IssuePck(pckCa, pckCaKey, pckKey, Platform, from, until);
            using var tcbSigning = SimulatedCertificates.IssueEcdsaCa(root, rootKey, tcbKey, "CN=Intel SGX TCB Signing, O=Morphisms Simulated TEE", from, until);

            return new State(
                arkKey.ExportPkcs8PrivateKeyPem(), ark.ExportCertificatePem(),
                askKey.ExportPkcs8PrivateKeyPem(), ask.ExportCertificatePem(),
                vcekKey.ExportPkcs8PrivateKeyPem(), vcek.ExportCertificatePem(), Convert.ToHexStringLower(chipId),
                rootKey.ExportPkcs8PrivateKeyPem(), root.ExportCertificatePem(),
                pckCaKey.ExportPkcs8PrivateKeyPem(), pckCa.ExportCertificatePem(),
                pckKey.ExportPkcs8PrivateKeyPem(), pck.ExportCertificatePem(),
                tcbKey.ExportPkcs8PrivateKeyPem(), tcbSigning.ExportCertificatePem());
        }

        // A record's ToString prints every property: the private keys stay out of it, the certificates stay in.
        private bool PrintMembers(StringBuilder builder)
        {
            builder.Append("ArkKey = [redacted], Ark = ").Append(Ark).Append(", AskKey = [redacted], Ask = ").Append(Ask)
                .Append(", VcekKey = [redacted], Vcek = ").Append(Vcek).Append(", ChipId = ").Append(ChipId)
                .Append(", SgxRootKey = [redacted], SgxRoot = ").Append(SgxRoot).Append(", PckCaKey = [redacted], PckCa = ").Append(PckCa)
                .Append(", PckKey = [redacted], Pck = ").Append(Pck).Append(", TcbSigningKey = [redacted], TcbSigning = ").Append(TcbSigning);
            return true;
        }
    }

    /// <summary>Parsed certificates of the state; private keys are re-imported per use and disposed.</summary>
    private sealed class Keys(State state) : IDisposable
    {
        // Parsed on first use: an instance signing SNP reports needs the VCEK alone, and each certificate costs a
        // cold process a fraction of a millisecond on its launch.
        private readonly Lazy<X509Certificate2> _ark = Parsed(state.Ark);
        private readonly Lazy<X509Certificate2> _ask = Parsed(state.Ask);
        private readonly Lazy<X509Certificate2> _vcekCertificate = Parsed(state.Vcek);
        private readonly Lazy<X509Certificate2> _sgxRoot = Parsed(state.SgxRoot);
        private readonly Lazy<X509Certificate2> _pckCa = Parsed(state.PckCa);
        private readonly Lazy<X509Certificate2> _pckCertificate = Parsed(state.Pck);
        private readonly Lazy<X509Certificate2> _tcbSigning = Parsed(state.TcbSigning);

        public X509Certificate2 Ark => _ark.Value;
        public X509Certificate2 Ask => _ask.Value;
        public X509Certificate2 Vcek => _vcekCertificate.Value;
        public X509Certificate2 SgxRoot => _sgxRoot.Value;
        public X509Certificate2 PckCa => _pckCa.Value;
        public X509Certificate2 Pck => _pckCertificate.Value;
        public X509Certificate2 TcbSigning => _tcbSigning.Value;

        // Importing a private key re-derives and checks its public point, which costs more than the signature
        // itself; the keys signing every report and quote are therefore imported once per concurrent signer.
        private readonly KeyPool _vcek = new(state.VcekKey);
        private readonly KeyPool _pck = new(state.PckKey);

        public static Keys Load(State state) => new(state);

        public byte[] SignWithVcek(ReadOnlySpan<byte> data) => _vcek.Sign(data, HashAlgorithmName.SHA384);
        public byte[] SignWithPck(ReadOnlySpan<byte> data) => _pck.Sign(data, HashAlgorithmName.SHA256);
        public ECDsa PckCaKey() => ImportEc(state.PckCaKey);
        public ECDsa SgxRootKey() => ImportEc(state.SgxRootKey);
        public ECDsa TcbSigningKey() => ImportEc(state.TcbSigningKey);

        public void Dispose()
        {
            foreach (var certificate in new[] { _ark, _ask, _vcekCertificate, _sgxRoot, _pckCa, _pckCertificate, _tcbSigning }.Where(c => c.IsValueCreated))
            {
                certificate.Value.Dispose();
            }

            _vcek.Dispose();
            _pck.Dispose();
        }

        private static Lazy<X509Certificate2> Parsed(string pem) => new(() => X509Certificate2.CreateFromPem(pem));

        private static ECDsa ImportEc(string pem)
        {
            var key = ECDsa.Create();
            key.ImportFromPem(pem);
            return key;
        }
    }

    /// <summary>One private key, imported once per concurrent user: the BCL does not promise one ECDsa is safe to share.</summary>
    private sealed class KeyPool(string pem) : IDisposable
    {
        private readonly System.Collections.Concurrent.ConcurrentBag<ECDsa> _idle = [];

        public byte[] Sign(ReadOnlySpan<byte> data, HashAlgorithmName hash)
        {
            if (!_idle.TryTake(out var key))
            {
                key = ECDsa.Create();
                key.ImportFromPem(pem);
            }

            try
            {
                return key.SignData(data, hash);
            }
            finally
            {
                _idle.Add(key);
            }
        }

        public void Dispose()
        {
            while (_idle.TryTake(out var key))
            {
                key.Dispose();
            }
        }
    }
}
