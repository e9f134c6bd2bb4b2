using System.Text.Json.Nodes;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Transit;

/// <summary>
/// Vault's transit engine on one mount: named keys (<c>aes256-gcm96</c>, <c>ecdsa-p256</c>, <c>ed25519</c>) with
/// versions, rotation and min decryption/encryption versions; encrypt, decrypt, rewrap, datakey, sign, verify.
/// Keys live under the barrier and never leave it. Key writes are serialised; cryptographic operations read
/// whichever version set is current, so rotation never blocks or breaks them.
/// </summary>
internal sealed partial class TransitBackend : ILogicalBackend
{
    private const string Name = "(?<name>[A-Za-z0-9_.-]{1,128})";
    private readonly ISecureStorage _storage;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _writes = new(1, 1);

    /// <param name="storage">The mount's storage.</param>
    /// <param name="time">The clock.</param>
    public TransitBackend(ISecureStorage storage, TimeProvider time)
    {
        _storage = storage;
        _time = time;
        Routes.Add(new Route("transit/keys/list", "keys/?"), (Operation.List, ListKeys));
        Routes.Add(new Route("transit/keys/rotate", "keys/" + Name + "/rotate"), (Operation.Update, RotateKey));
        Routes.Add(new Route("transit/keys/config", "keys/" + Name + "/config"), (Operation.Update, ConfigureKey));
        Routes.Add(new Route("transit/keys", "keys/" + Name), (Operation.Read, ReadKey), (Operation.Update, CreateKey), (Operation.Delete, DeleteKey));
        Routes.Add(
            new Route("transit/encrypt", "encrypt/" + Name) { Existence = async (_, m, ct) => await LoadAsync(m["name"], ct).ConfigureAwait(false) is not null },
            (Operation.Create, EncryptUpsert), (Operation.Update, Encrypt));
        Routes.Add(new Route("transit/decrypt", "decrypt/" + Name), (Operation.Update, Decrypt));
        Routes.Add(new Route("transit/rewrap", "rewrap/" + Name), (Operation.Update, Rewrap));
        Routes.Add(new Route("transit/datakey", "datakey/(?<kind>plaintext|wrapped)/" + Name), (Operation.Update, DataKey));
        Routes.Add(new Route("transit/sign", "sign/" + Name + "(/(?<hash>[a-z0-9-]+))?"), (Operation.Update, Sign));
        Routes.Add(new Route("transit/verify", "verify/" + Name + "(/(?<hash>[a-z0-9-]+))?"), (Operation.Update, Verify));
    }

    /// <inheritdoc />
    public string Type => "transit";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();

    private Task<TransitKey?> LoadAsync(string name, CancellationToken ct) => _storage.GetJsonAsync<TransitKey>("policy/" + name, ct);

    private async Task<TransitKey> RequireAsync(string name, CancellationToken ct) =>
        await LoadAsync(name, ct).ConfigureAwait(false) ?? throw KmsException.BadRequest($"encryption key not found: no transit key named '{name}'");

    private async Task<KmsResponse?> ListKeys(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var keys = await _storage.ListAsync("policy/", ct).ConfigureAwait(false);
        return keys.Count == 0 ? throw KmsException.NotFound() : KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(keys) });
    }

    private async Task<KmsResponse?> ReadKey(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var key = await LoadAsync(match["name"], ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        return KmsResponse.WithData(key.ToJson(match["name"]));
    }

    private async Task<KmsResponse?> CreateKey(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var type = f.String("type") ?? "aes256-gcm96";
        PkiRole.RejectUnknown(f, ["type", "exportable", "derived", "convergent_encryption", "allow_plaintext_backup", "auto_rotate_period"]);
        if (!TransitKey.Types.Contains(type))
        {
            throw KmsException.BadRequest($"invalid 'type': use one of {string.Join(", ", TransitKey.Types)}");
        }

        if (f.Bool("exportable") == true || f.Bool("derived") == true || f.Bool("convergent_encryption") == true || f.Bool("allow_plaintext_backup") == true)
        {
            throw KmsException.BadRequest("invalid 'exportable'/'derived'/'convergent_encryption'/'allow_plaintext_backup': not supported, keys never leave the KMS");
        }

        if (f.Duration("auto_rotate_period") is { } period && period != TimeSpan.Zero)
        {
            throw KmsException.BadRequest("invalid 'auto_rotate_period': automatic rotation is not supported; call keys/NAME/rotate");
        }

        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Vault answers 204 for an existing key and leaves it unchanged.
            if (await LoadAsync(match["name"], ct).ConfigureAwait(false) is null)
            {
                await _storage.PutJsonAsync("policy/" + match["name"], TransitKey.Create(type, _time.GetUtcNow()), ct).ConfigureAwait(false);
            }

            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KmsResponse?> DeleteKey(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var key = await LoadAsync(match["name"], ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
            if (!key.DeletionAllowed)
            {
                throw KmsException.BadRequest("deletion is not allowed for this key: set 'deletion_allowed' with keys/NAME/config first");
            }

            await _storage.DeleteAsync("policy/" + match["name"], ct).ConfigureAwait(false);
            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KmsResponse?> RotateKey(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        PkiRole.RejectUnknown(request.Fields, []);
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var key = await RequireAsync(match["name"], ct).ConfigureAwait(false);
            key.AddVersion(_time.GetUtcNow());
            await _storage.PutJsonAsync("policy/" + match["name"], key, ct).ConfigureAwait(false);
            return KmsResponse.WithData(key.ToJson(match["name"]));
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KmsResponse?> ConfigureKey(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var minDecryption = f.NonNegativeInt("min_decryption_version");
        var minEncryption = f.NonNegativeInt("min_encryption_version");
        var deletionAllowed = f.Bool("deletion_allowed");
        PkiRole.RejectUnknown(f, ["min_decryption_version", "min_encryption_version", "deletion_allowed"]);
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var key = await RequireAsync(match["name"], ct).ConfigureAwait(false);
            var newMinDecryption = minDecryption is null or 0 ? key.MinDecryptionVersion : (int)minDecryption;
            var newMinEncryption = (int?)minEncryption ?? key.MinEncryptionVersion;
            if (newMinDecryption > key.LatestVersion)
            {
                throw KmsException.BadRequest("invalid 'min_decryption_version': it cannot exceed the latest version");
            }

            if (newMinEncryption > key.LatestVersion)
            {
                throw KmsException.BadRequest("invalid 'min_encryption_version': it cannot exceed the latest version");
            }

            if (newMinEncryption != 0 && newMinEncryption < newMinDecryption)
            {
                throw KmsException.BadRequest("invalid 'min_encryption_version': it must be 0 or at least min_decryption_version");
            }

            key.MinDecryptionVersion = newMinDecryption;
            key.MinEncryptionVersion = newMinEncryption;
            key.DeletionAllowed = deletionAllowed ?? key.DeletionAllowed;
            await _storage.PutJsonAsync("policy/" + match["name"], key, ct).ConfigureAwait(false);
            return KmsResponse.WithData(key.ToJson(match["name"]));
        }
        finally
        {
            _writes.Release();
        }
    }
}
