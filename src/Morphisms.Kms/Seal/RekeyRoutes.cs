using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Seal;

/// <summary>
/// <c>sys/rekey/init</c> (GET status, PUT start, DELETE cancel) and <c>sys/rekey/update</c>, with Vault's shapes.
/// As in Vault they take no token: holding a threshold of the current shares is the authorisation. They need an
/// unsealed KMS, so an operator notices a rekey only while it can still be undone by cancelling.
/// </summary>
internal static class RekeyRoutes
{
    public static void Register(RouteTable routes, KmsCore core)
    {
        routes.Add(
            new Route("sys/rekey/init", "rekey/init") { Unauthenticated = true },
            (Operation.Read, (_, _, _) => Raw(Status(core))),
            (Operation.Update, (r, _, ct) => InitAsync(core, r, ct)),
            (Operation.Delete, async (r, _, ct) =>
            {
                await core.RekeyCancelAsync(ct).ConfigureAwait(false);
                r.State?.Audit?.Notice("rekey cancelled");
                return null;
            }));
        routes.Add(
            new Route("sys/rekey/update", "rekey/update") { Unauthenticated = true },
            (Operation.Update, (r, _, ct) => UpdateAsync(core, r, ct)));
    }

    private static async Task<KmsResponse?> InitAsync(KmsCore core, KmsRequest request, CancellationToken ct)
    {
        var f = request.Fields;
        if (f.StringList("pgp_keys") is { Count: > 0 })
        {
            throw KmsException.BadRequest("'pgp_keys': PGP-encrypted key shares are not supported");
        }

        if (f.Bool("backup") == true)
        {
            throw KmsException.BadRequest("'backup': storing backup shares is not supported");
        }

        if (f.Bool("require_verification") == true)
        {
            throw KmsException.BadRequest("'require_verification': rekey verification is not supported");
        }

        var shares = f.NonNegativeInt("secret_shares") ?? throw KmsException.BadRequest("missing required parameter 'secret_shares'");
        var threshold = f.NonNegativeInt("secret_threshold") ?? throw KmsException.BadRequest("missing required parameter 'secret_threshold'");
        await core.RekeyInitAsync((int)shares, (int)threshold, ct).ConfigureAwait(false);
        request.State?.Audit?.Notice($"rekey started: {shares} shares, threshold {threshold}");
        return new KmsResponse { RawBody = Status(core) };
    }

    private static async Task<KmsResponse?> UpdateAsync(KmsCore core, KmsRequest request, CancellationToken ct)
    {
        var f = request.Fields;
        var key = f.String("key");
        if (string.IsNullOrEmpty(key))
        {
            throw KmsException.BadRequest("missing required parameter 'key'");
        }

        var nonce = f.String("nonce");
        if (string.IsNullOrEmpty(nonce))
        {
            throw KmsException.BadRequest("missing required parameter 'nonce'");
        }

        var attempt = core.Rekey;
        var keys = await core.RekeyUpdateAsync(SealRoutes.DecodeKey(key), nonce, ct).ConfigureAwait(false);
        if (keys is null)
        {
            return new KmsResponse { RawBody = Status(core) };
        }

        request.State?.Audit?.Notice($"rekey completed: {keys.Count} new shares; the old shares no longer unseal");
        return new KmsResponse
        {
            RawBody = new JsonObject
            {
                ["complete"] = true,
                ["nonce"] = attempt?.Nonce ?? "",
                ["keys"] = JsonValues.Strings(keys.Select(Convert.ToHexStringLower)),
                ["keys_base64"] = JsonValues.Strings(keys.Select(k => Convert.ToBase64String(k))),
                ["pgp_fingerprints"] = null,
                ["backup"] = false,
                ["verification_required"] = false,
            },
        };
    }

    private static JsonObject Status(KmsCore core)
    {
        var attempt = core.Rekey;
        return new JsonObject
        {
            ["started"] = attempt is not null,
            ["nonce"] = attempt?.Nonce ?? "",
            ["t"] = attempt?.NewThreshold ?? 0,
            ["n"] = attempt?.NewShares ?? 0,
            ["progress"] = attempt?.Shares.Count ?? 0,
            ["required"] = core.SealConfig?.SecretThreshold ?? 0,
            ["pgp_fingerprints"] = null,
            ["backup"] = false,
            ["verification_required"] = false,
        };
    }

    private static Task<KmsResponse?> Raw(JsonObject body) => Task.FromResult<KmsResponse?>(new KmsResponse { RawBody = body });
}
