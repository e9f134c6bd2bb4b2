using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Transit;

/// <summary>Encrypt, decrypt, rewrap, datakey, sign and verify.</summary>
internal sealed partial class TransitBackend
{
    private const int MaxBatch = 1000;

    /// <summary>Verify's parameters that apply to the whole request, batch or not (Vault's too).</summary>
    private static readonly string[] VerifyRequestFields = ["hash_algorithm", "marshaling_algorithm", "signature_algorithm"];

    /// <summary>Sign's: verify's and the key version.</summary>
    private static readonly string[] SignRequestFields = [.. VerifyRequestFields, "key_version"];

    private async Task<KmsResponse?> Encrypt(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        // Vault ignores 'type' when the key exists; it only shapes an upsert.
        request.Fields.String("type");
        var key = await RequireEncryptionKeyAsync(match["name"], ct).ConfigureAwait(false);
        return EncryptWith(key, request.Fields);
    }

    /// <summary>
    /// <c>encrypt/NAME</c> for a key that does not exist yet, by a token with <c>create</c> on the path: Vault's upsert
    /// makes the key (<c>type</c>, default and only choice <c>aes256-gcm96</c>) and encrypts with it. The request is
    /// encrypted with the new key first and the key stored only if a ciphertext came out, so bad input stores nothing;
    /// a key created meanwhile by another request is used instead.
    /// </summary>
    private async Task<KmsResponse?> EncryptUpsert(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var type = request.Fields.String("type") ?? "aes256-gcm96";
        if (type != "aes256-gcm96")
        {
            throw KmsException.BadRequest($"invalid 'type': encrypt creates only aes256-gcm96 keys (\"{PkiRole.Printable(type)}\" cannot encrypt here)");
        }

        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (await LoadAsync(match["name"], ct).ConfigureAwait(false) is { } existing)
            {
                return EncryptWith(existing, request.Fields);
            }

            var created = TransitKey.Create(type, _time.GetUtcNow());
            var response = EncryptWith(created, request.Fields);
            if (ProducedCiphertext(response))
            {
                await _storage.PutJsonAsync("policy/" + match["name"], created, ct).ConfigureAwait(false);
            }

            return response;
        }
        finally
        {
            _writes.Release();
        }
    }

    private static KmsResponse EncryptWith(TransitKey key, Fields fields) =>
        Batch(fields, ["plaintext", "key_version", "context", "nonce"], item =>
        {
            var plaintext = TransitCiphertext.Base64(item.String("plaintext") ?? throw KmsException.BadRequest("missing required parameter 'plaintext'"), "plaintext");
            var (version, material) = key.ForEncryption(item.NonNegativeInt("key_version"));
            RejectContext(item);
            return new JsonObject { ["ciphertext"] = TransitCiphertext.Encrypt(material, version, plaintext), ["key_version"] = version };
        }, requestFields: ["type"]);

    // A batch answers 400 with the items that did succeed still in it: their ciphertexts need the key.
    private static bool ProducedCiphertext(KmsResponse response) =>
        response.Data is { } data && (data.ContainsKey("ciphertext")
            || (data["batch_results"] as JsonArray)?.Any(r => r is JsonObject o && o.ContainsKey("ciphertext")) == true);

    private async Task<KmsResponse?> Decrypt(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var key = await RequireEncryptionKeyAsync(match["name"], ct).ConfigureAwait(false);
        return Batch(request.Fields, ["ciphertext", "context", "nonce"], item =>
        {
            RejectContext(item);
            var plaintext = DecryptText(key, item.String("ciphertext"));
            return new JsonObject { ["plaintext"] = Convert.ToBase64String(plaintext) };
        });
    }

    private async Task<KmsResponse?> Rewrap(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var key = await RequireEncryptionKeyAsync(match["name"], ct).ConfigureAwait(false);
        return Batch(request.Fields, ["ciphertext", "key_version", "context", "nonce"], item =>
        {
            RejectContext(item);
            var plaintext = DecryptText(key, item.String("ciphertext"));
            var (version, material) = key.ForEncryption(item.NonNegativeInt("key_version"));
            return new JsonObject { ["ciphertext"] = TransitCiphertext.Encrypt(material, version, plaintext), ["key_version"] = version };
        });
    }

    private async Task<KmsResponse?> DataKey(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var bits = f.NonNegativeInt("bits") ?? 256;
        var keyVersion = f.NonNegativeInt("key_version");
        RejectContext(f);
        PkiRole.RejectUnknown(f, ["bits", "key_version", "context", "nonce"]);
        if (bits is not (128 or 256 or 512))
        {
            throw KmsException.BadRequest("invalid 'bits': use 128, 256 or 512");
        }

        var key = await RequireEncryptionKeyAsync(match["name"], ct).ConfigureAwait(false);
        var (version, material) = key.ForEncryption(keyVersion);
        var plaintext = RandomNumberGenerator.GetBytes((int)bits / 8);
        var data = new JsonObject { ["ciphertext"] = TransitCiphertext.Encrypt(material, version, plaintext), ["key_version"] = version };
        if (match["kind"] == "plaintext")
        {
            data["plaintext"] = Convert.ToBase64String(plaintext);
        }

        CryptographicOperations.ZeroMemory(plaintext);
        return KmsResponse.WithData(data);
    }

    private async Task<KmsResponse?> Sign(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var (hash, jws) = SigningOptions(f, match["hash"]);
        var keyVersion = f.NonNegativeInt("key_version");
        var key = await RequireSigningKeyAsync(match["name"], ct).ConfigureAwait(false);
        var (version, material) = key.ForEncryption(keyVersion);

        // As in Vault, the hash, marshaling and key version are the request's; a batch item carries only its input.
        return Batch(f, ["input", "context"], item =>
        {
            var input = TransitCiphertext.Base64(item.RequiredString("input"), "input");
            RejectContext(item, nonce: false);
            var signature = TransitSigning.Sign(key.Type, material, input, hash, jws);
            var text = jws ? Convert.ToBase64String(signature).TrimEnd('=').Replace('+', '-').Replace('/', '_') : Convert.ToBase64String(signature);
            return new JsonObject { ["signature"] = TransitCiphertext.Prefix(version) + text, ["key_version"] = version };
        }, SignRequestFields, failedItemsFailTheBatch: false);
    }

    private async Task<KmsResponse?> Verify(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var (hash, jws) = SigningOptions(f, match["hash"]);
        var key = await RequireSigningKeyAsync(match["name"], ct).ConfigureAwait(false);
        return Batch(f, ["input", "signature", "context"], item =>
        {
            if (item.HasValue("hmac"))
            {
                throw KmsException.BadRequest("invalid 'hmac': this engine has no HMAC keys; verify takes a 'signature'");
            }

            var input = TransitCiphertext.Base64(item.RequiredString("input"), "input");
            var (version, signature) = TransitCiphertext.Parse(item.RequiredString("signature"), "signature");
            RejectContext(item, nonce: false);
            var material = key.ForDecryption(version, "signature");
            bool valid;
            try
            {
                valid = TransitSigning.Verify(key.Type, material, input, signature, hash, jws);
            }
            catch (Exception e) when (e is CryptographicException or ArgumentException or FormatException)
            {
                // A signature of the wrong length or shape is simply not valid, never a server error.
                valid = false;
            }

            return new JsonObject { ["valid"] = valid };
        }, VerifyRequestFields, failedItemsFailTheBatch: false);
    }

    private static (HashAlgorithmName Hash, bool Jws) SigningOptions(Fields f, string pathHash)
    {
        var name = f.String("hash_algorithm") ?? (pathHash.Length > 0 ? pathHash : "sha2-256");
        var hash = name switch
        {
            "sha2-256" => HashAlgorithmName.SHA256,
            "sha2-384" => HashAlgorithmName.SHA384,
            "sha2-512" => HashAlgorithmName.SHA512,
            _ => throw KmsException.BadRequest("invalid 'hash_algorithm': use sha2-256, sha2-384 or sha2-512"),
        };
        var marshaling = f.String("marshaling_algorithm") ?? "asn1";
        if (marshaling is not ("asn1" or "jws"))
        {
            throw KmsException.BadRequest("invalid 'marshaling_algorithm': use asn1 or jws");
        }

        if (f.String("signature_algorithm") is { } sa && sa.Length > 0)
        {
            throw KmsException.BadRequest("invalid 'signature_algorithm': only RSA keys have one, and this engine has none");
        }

        return (hash, marshaling == "jws");
    }

    private static byte[] DecryptText(TransitKey key, string? ciphertext)
    {
        var (version, blob) = TransitCiphertext.Parse(ciphertext ?? throw KmsException.BadRequest("missing required parameter 'ciphertext'"), "ciphertext");
        return TransitCiphertext.Decrypt(key.ForDecryption(version, "ciphertext"), blob, "ciphertext");
    }

    private static void RejectContext(Fields f, bool nonce = true)
    {
        // Sign and verify have no nonce in Vault, so there it stays an unknown parameter.
        if (!string.IsNullOrEmpty(f.String("context")) || (nonce && !string.IsNullOrEmpty(f.String("nonce"))))
        {
            throw KmsException.BadRequest("invalid 'context': key derivation is not supported (keys are not derived)");
        }
    }

    private async Task<TransitKey> RequireEncryptionKeyAsync(string name, CancellationToken ct)
    {
        var key = await RequireAsync(name, ct).ConfigureAwait(false);
        return key.SupportsEncryption ? key : throw KmsException.BadRequest($"key type {key.Type} does not support encryption");
    }

    private async Task<TransitKey> RequireSigningKeyAsync(string name, CancellationToken ct)
    {
        var key = await RequireAsync(name, ct).ConfigureAwait(false);
        return key.SupportsSigning ? key : throw KmsException.BadRequest($"key type {key.Type} does not support signing");
    }

    /// <summary>
    /// Runs <paramref name="one"/> on the request itself, or on each item of <c>batch_input</c>. As in Vault, each
    /// result carries its item's <c>reference</c> ("" when none), and a failing item reports its error in its result
    /// and makes the response a 400, or <c>partial_failure_response_code</c> when other items succeeded.
    /// <paramref name="requestFields"/> are parameters the caller read from the request itself (sign's hash, say):
    /// allowed beside <c>batch_input</c> too, where item fields are not. Without <paramref name="failedItemsFailTheBatch"/>
    /// (sign and verify) a batch is a 200 whatever its items' outcome, as Vault answers them, and takes no
    /// <c>partial_failure_response_code</c>: Vault clients read those results item by item, and a 400 would make most of
    /// them throw away the signatures that did succeed.
    /// </summary>
    private static KmsResponse Batch(Fields f, string[] itemFields, Func<Fields, JsonObject> one, string[]? requestFields = null, bool failedItemsFailTheBatch = true)
    {
        requestFields ??= [];
        string[] statusFields = failedItemsFailTheBatch ? ["partial_failure_response_code"] : [];
        var partialFailureCode = failedItemsFailTheBatch ? PartialFailureCode(f) : null;
        if (!f.Has("batch_input"))
        {
            // Vault takes a top-level reference too, and echoes it nowhere.
            var result = one(f);
            f.String("reference");
            PkiRole.RejectUnknown(f, [.. itemFields, .. requestFields, .. statusFields, "reference"]);
            return KmsResponse.WithData(result);
        }

        if (f.Data["batch_input"] is not JsonArray items || items.Count is 0 or > MaxBatch || items.Any(i => i is not JsonObject))
        {
            throw KmsException.BadRequest($"invalid 'batch_input': an array of 1 to {MaxBatch} objects");
        }

        PkiRole.RejectUnknown(f, [.. requestFields, .. statusFields, "batch_input", "reference"]);
        var results = new JsonArray();
        var errors = new List<string>();
        for (var i = 0; i < items.Count; i++)
        {
            var itemFields2 = new Fields(items[i]!.AsObject());
            var reference = "";
            JsonObject result;
            try
            {
                reference = itemFields2.String("reference") ?? "";
                result = one(itemFields2);
                PkiRole.RejectUnknown(itemFields2, [.. itemFields, "reference"]);
            }
            catch (KmsException e)
            {
                var message = $"batch_input[{i}]: {string.Join("; ", e.Errors)}";
                errors.Add(message);
                result = new JsonObject { ["error"] = message };
            }

            // Clients match results to inputs by it, so it is echoed for failed items too.
            result["reference"] = reference;
            results.Add(result);
        }

        var data = new JsonObject { ["batch_results"] = results };
        if (errors.Count == 0 || !failedItemsFailTheBatch)
        {
            return KmsResponse.WithData(data);
        }

        return new KmsResponse { StatusCode = errors.Count < items.Count ? partialFailureCode ?? 400 : 400, Data = data, Errors = errors };
    }

    /// <summary>
    /// <c>partial_failure_response_code</c>: the status of a batch in which some items failed and some succeeded.
    /// A status that cannot be a final response (below 200, or not HTTP's) is refused rather than ignored.
    /// </summary>
    private static int? PartialFailureCode(Fields f)
    {
        var code = f.Int("partial_failure_response_code");
        return code is null or (>= 200 and <= 599) ? (int?)code
            : throw KmsException.BadRequest("invalid value for parameter 'partial_failure_response_code': expected an HTTP status between 200 and 599");
    }
}
