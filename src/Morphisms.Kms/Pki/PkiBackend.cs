using System.Text.Json.Nodes;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Pki;

/// <summary>
/// Vault's PKI secrets engine on one mount: CA set-up (root, intermediate CSR, signing, set-signed), roles,
/// issuance (<c>issue</c> makes the key and returns it once; <c>sign</c> takes a CSR), revocation and CRLs,
/// and issuer rotation (<c>intermediate/rotate</c>: the old issuer stays in <c>ca_chain</c> until its last
/// leaf expires). A mount with the <see cref="KmsRootOption"/> (the default <c>pki/</c>) is rooted in the KMS
/// root CA served by <c>sys/attestation</c>, creates its first intermediate on demand and signs function
/// certificates at attest-login; it refuses every route that would give a caller a CA, a CA key or an imported
/// issuer under that root (<see cref="KmsRootRule"/>), and only init sets the option. Everything lives under the
/// barrier; writes are serialised per mount.
/// </summary>
internal sealed partial class PkiBackend : ILogicalBackend
{
    /// <summary>The mount option that roots the mount in the KMS root CA (set by init only; <c>sys/mounts</c> refuses it).</summary>
    public const string KmsRootOption = "kms_root";

    /// <summary>The function-certificate domain when none is configured.</summary>
    public const string DefaultFunctionDomain = "fn.morphisms.local";

    private const string ConfigKey = "config/issuers";
    private const string CrlKey = "crl/state";
    private static readonly TimeSpan DefaultIntermediateTtl = TimeSpan.FromDays(365);

    /// <summary>
    /// Function intermediates are P-256 unless <c>intermediate/rotate</c> asks for 384: the intermediate signs a leaf
    /// at every attest-login, and on OpenSSL 3.0 a P-384 signature costs ~35× a P-256 one (0.9 vs 0.025 ms here),
    /// which made it a third of the KMS's CPU per login. P-256 is 128-bit security, the level of the X25519/AES-128
    /// TLS it authenticates; the long-lived KMS root stays P-384.
    /// </summary>
    private const int DefaultIntermediateKeyBits = 256;

    /// <summary>What <c>intermediate/rotate</c> (or the first issuance) asks of a new intermediate.</summary>
    private sealed record IntermediateSpec(string? CommonName, TimeSpan? Ttl, int KeyBits);
    private readonly ISecureStorage _storage;
    private readonly ISecureStorage _barrier;
    private readonly bool _kmsRoot;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writes = new(1, 1);
    private readonly CaKeyPool _signers = new();

    /// <param name="storage">The mount's own storage.</param>
    /// <param name="barrier">The whole barrier (the KMS root CA's key lives at <c>core/root-ca</c>).</param>
    /// <param name="kmsRoot">Whether the mount is rooted in the KMS root CA.</param>
    /// <param name="time">The clock.</param>
    public PkiBackend(ISecureStorage storage, ISecureStorage barrier, bool kmsRoot, TimeProvider time)
    {
        _storage = storage;
        _barrier = barrier;
        _kmsRoot = kmsRoot;
        _time = time;
        const string Name = "(?<name>[A-Za-z0-9_.-]{1,128})";
        Routes.Add(new Route("pki/root/generate", "root/generate/(?<type>internal|exported)"), (Operation.Update, GenerateRoot));
        Routes.Add(new Route("pki/root/sign-intermediate", "root/sign-intermediate"), (Operation.Update, SignIntermediate));
        Routes.Add(new Route("pki/intermediate/generate", "intermediate/generate/(?<type>internal|exported)"), (Operation.Update, GenerateIntermediate));
        Routes.Add(new Route("pki/intermediate/set-signed", "intermediate/set-signed"), (Operation.Update, SetSigned));
        Routes.Add(new Route("pki/intermediate/rotate", "intermediate/rotate"), (Operation.Update, Rotate));

        // Served without a token, as Vault serves them (its PKI engine's unauthenticated paths): a CRL is signed and
        // public by nature, and clients fetch it on their own to refuse revoked function certificates (Morphisms.Client's
        // FunctionCrlCache); the issuer list tells them which issuer's CRL to read after intermediate/rotate.
        Routes.Add(new Route("pki/issuers", "issuers/?") { Unauthenticated = true }, (Operation.List, ListIssuers), (Operation.Read, ListIssuers));
        Routes.Add(new Route("pki/issuer/crl", "issuer/(?<ref>[A-Za-z0-9_-]{1,64})/crl(?<pem>/pem)?") { Unauthenticated = true }, (Operation.Read, ReadIssuerCrl));
        Routes.Add(new Route("pki/issuer", "issuer/(?<ref>[A-Za-z0-9_-]{1,64})"), (Operation.Read, ReadIssuer));
        Routes.Add(new Route("pki/roles/list", "roles/?"), (Operation.List, ListRoles));
        Routes.Add(new Route("pki/roles", "roles/" + Name), (Operation.Read, ReadRole), (Operation.Update, WriteRole), (Operation.Delete, DeleteRole));
        Routes.Add(new Route("pki/issue", "issue/" + Name), (Operation.Update, Issue));
        Routes.Add(new Route("pki/sign", "sign/" + Name), (Operation.Update, Sign));
        Routes.Add(new Route("pki/revoke", "revoke"), (Operation.Update, Revoke));
        Routes.Add(new Route("pki/crl", "(crl|cert/crl)") { Unauthenticated = true }, (Operation.Read, ReadCrlJson));
        Routes.Add(new Route("pki/crl/pem", "crl/pem") { Unauthenticated = true }, (Operation.Read, ReadCrlPem));
        Routes.Add(new Route("pki/ca_chain", "ca_chain"), (Operation.Read, ReadCaChainPem));
        Routes.Add(new Route("pki/cert/ca_chain", "cert/ca_chain"), (Operation.Read, ReadCaChainJson));
        Routes.Add(new Route("pki/ca/pem", "ca/pem"), (Operation.Read, ReadCaPem));
        Routes.Add(new Route("pki/cert", "cert/(?<serial>[0-9A-Fa-f:-]{1,64})"), (Operation.Read, ReadCert));
        Routes.Add(new Route("pki/certs", "certs/?"), (Operation.List, ListCerts));
        Routes.Add(new Route("pki/config/functions", "config/functions"), (Operation.Read, ReadFunctionConfig), (Operation.Update, WriteFunctionConfig));
    }

    /// <inheritdoc />
    public string Type => "pki";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();

    /// <summary>Whether the mount is rooted in the KMS root CA.</summary>
    public bool IsKmsRooted => _kmsRoot;

    private async Task<IssuersConfig> LoadConfigAsync(CancellationToken ct) =>
        await _storage.GetJsonAsync<IssuersConfig>(ConfigKey, ct).ConfigureAwait(false) ?? new IssuersConfig();

    private Task<IssuerRecord?> LoadIssuerAsync(string id, CancellationToken ct) => _storage.GetJsonAsync<IssuerRecord>("issuers/" + id, ct);

    private async Task<List<IssuerRecord>> LoadIssuersAsync(CancellationToken ct)
    {
        var list = new List<IssuerRecord>();
        foreach (var id in await _storage.ListAsync("issuers/", ct).ConfigureAwait(false))
        {
            if (await LoadIssuerAsync(id, ct).ConfigureAwait(false) is { } issuer)
            {
                list.Add(issuer);
            }
        }

        return [.. list.OrderBy(i => i.Sequence).ThenBy(i => i.CreatedAt)];
    }

    /// <summary>The signing key of issuer <paramref name="id"/> (the KMS root's comes from <c>core/root-ca</c>).</summary>
    private async Task<CaKey> LoadKeyAsync(string id, CancellationToken ct)
    {
        if (id == KmsRootCa.KmsRootIssuerId && _kmsRoot)
        {
            return await KmsRootCa.LoadSignerAsync(_barrier, ct).ConfigureAwait(false);
        }

        var issuer = await LoadIssuerAsync(id, ct).ConfigureAwait(false) ?? throw KmsException.BadRequest($"unknown issuer '{id}'");
        return CaKey.FromPem(issuer.Id, issuer.Certificate, issuer.PrivateKey);
    }

    /// <summary>The issuer's certificate and everything above it, PEM, nearest first.</summary>
    private static List<string> ChainOf(IssuerRecord issuer) => [issuer.Certificate, .. issuer.Parents];

    /// <summary>The default issuer, creating the first intermediate under the KMS root when the mount has none yet.</summary>
    private async Task<IssuerRecord> DefaultIssuerAsync(CancellationToken ct)
    {
        if (await StoredDefaultIssuerAsync(ct).ConfigureAwait(false) is { } issuer)
        {
            return issuer;
        }

        if (!_kmsRoot)
        {
            throw KmsException.BadRequest("this mount has no issuer yet: generate a root or set a signed intermediate first");
        }

        await RotateIntermediateAsync(new IntermediateSpec(null, null, DefaultIntermediateKeyBits), new ExpectedDefault(null), ct).ConfigureAwait(false);
        var config = await LoadConfigAsync(ct).ConfigureAwait(false);
        return await LoadIssuerAsync(config.Default!, ct).ConfigureAwait(false) ?? throw new InvalidOperationException("the new issuer vanished");
    }

    /// <summary>The default issuer if the mount has one; never creates it (see <see cref="DefaultIssuerAsync"/>).</summary>
    private async Task<IssuerRecord?> StoredDefaultIssuerAsync(CancellationToken ct) =>
        (await LoadConfigAsync(ct).ConfigureAwait(false)).Default is { } id ? await LoadIssuerAsync(id, ct).ConfigureAwait(false) : null;

    private static string NewIssuerId() => Guid.NewGuid().ToString();

    private static KmsResponse Text(string text, string contentType) => new() { TextBody = text, ContentType = contentType };

    private static JsonObject CertData(string certificate, IssuerRecord issuer, string serial, DateTimeOffset notAfter) => new()
    {
        ["certificate"] = certificate,
        ["issuing_ca"] = issuer.Certificate,
        ["ca_chain"] = JsonValues.Strings(ChainOf(issuer)),
        ["serial_number"] = serial,
        ["expiration"] = notAfter.ToUnixTimeSeconds(),
        ["issuer_id"] = issuer.Id,
    };
}
