using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Seal;

/// <summary>
/// <c>sys/rekey/init</c> (GET status, PUT start, DELETE cancel), <c>sys/rekey/update</c> and
/// <c>sys/rekey/verify</c> (GET status, PUT a new share, DELETE restarts the verification), with Vault's shapes.
/// As in Vault they take no token: holding a threshold of the current shares is the authorisation. They need an
/// unsealed KMS, so an operator notices a rekey only while it can still be undone by cancelling.
/// </summary>
internal static class RekeyRoutes
{
    public static void Register(RouteTable routes, KmsCore core)
    {
        routes.Add(
            new Route("sys/rekey/init", "rekey/init") { Unauthenticated = true },
            (Operation.Read, async (r, _, ct) =>
            {
                await core.LoadPendingRekeyAsync(r.RequireState(), ct).ConfigureAwait(false);
                return new KmsResponse { RawBody = Status(core) };
            }),
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
        routes.Add(
            new Route("sys/rekey/verify", "rekey/verify") { Unauthenticated = true },
            (Operation.Read, async (r, _, ct) =>
            {
                await core.LoadPendingRekeyAsync(r.RequireState(), ct).ConfigureAwait(false);
                return new KmsResponse { RawBody = VerifyStatus(core) };
            }),
            (Operation.Update, (r, _, ct) => VerifyAsync(core, r, ct)),
            (Operation.Delete, async (r, _, ct) =>
            {
                await core.RekeyVerifyRestartAsync(r.RequireState(), ct).ConfigureAwait(false);
                r.State?.Audit?.Notice("rekey verification restarted");
                return new KmsResponse { RawBody = VerifyStatus(core) };
            }));
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

        var verify = f.Bool("require_verification") == true;
        var shares = f.NonNegativeInt("secret_shares") ?? throw KmsException.BadRequest("missing required parameter 'secret_shares'");
        var threshold = f.NonNegativeInt("secret_threshold") ?? throw KmsException.BadRequest("missing required parameter 'secret_threshold'");
        await core.RekeyInitAsync((int)shares, (int)threshold, verify, request.RequireState(), ct).ConfigureAwait(false);
        request.State?.Audit?.Notice($"rekey started: {shares} shares, threshold {threshold}{(verify ? ", verification required" : "")}");
        return new KmsResponse { RawBody = Status(core) };
    }

    private static async Task<KmsResponse?> UpdateAsync(KmsCore core, KmsRequest request, CancellationToken ct)
    {
        var (key, nonce) = KeyAndNonce(request);
        var result = await core.RekeyUpdateAsync(SealRoutes.DecodeKey(key), nonce, request.RequireState(), ct).ConfigureAwait(false);
        if (result is null)
        {
            return new KmsResponse { RawBody = Status(core) };
        }

        var keys = result.Keys;
        request.State?.Audit?.Notice(result.VerificationNonce is null
            ? $"rekey completed: {keys.Count} new shares; the old shares no longer unseal"
            : $"rekey: {keys.Count} new shares handed out; the current shares unseal until a threshold of the new ones is verified (sys/rekey/verify)");
        var body = new JsonObject
        {
            ["complete"] = true,
            ["nonce"] = result.Nonce,
            ["keys"] = JsonValues.Strings(keys.Select(Convert.ToHexStringLower)),
            ["keys_base64"] = JsonValues.Strings(keys.Select(k => Convert.ToBase64String(k))),
            ["pgp_fingerprints"] = null,
            ["backup"] = false,
            ["verification_required"] = result.VerificationNonce is not null,
        };
        if (result.VerificationNonce is { } verificationNonce)
        {
            body["verification_nonce"] = verificationNonce;
        }

        return new KmsResponse { RawBody = body };
    }

    private static async Task<KmsResponse?> VerifyAsync(KmsCore core, KmsRequest request, CancellationToken ct)
    {
        var (key, nonce) = KeyAndNonce(request);
        if (!await core.RekeyVerifyAsync(SealRoutes.DecodeKey(key), nonce, request.RequireState(), ct).ConfigureAwait(false))
        {
            return new KmsResponse { RawBody = VerifyStatus(core) };
        }

        request.State?.Audit?.Notice("rekey verified and completed: the old shares no longer unseal");
        return new KmsResponse { RawBody = new JsonObject { ["nonce"] = nonce, ["complete"] = true } };
    }

    private static (string Key, string Nonce) KeyAndNonce(KmsRequest request)
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

        return (key, nonce);
    }

    private static JsonObject Status(KmsCore core)
    {
        var attempt = core.Rekey;
        var status = new JsonObject
        {
            ["started"] = attempt is not null,
            ["nonce"] = attempt?.Nonce ?? "",
            ["t"] = attempt?.NewThreshold ?? 0,
            ["n"] = attempt?.NewShares ?? 0,
            ["progress"] = attempt?.Shares.Count ?? 0,
            ["required"] = core.SealConfig?.SecretThreshold ?? 0,
            ["pgp_fingerprints"] = null,
            ["backup"] = false,
            ["verification_required"] = attempt?.RequireVerification ?? false,
        };
        if (attempt?.Verification is { } verification)
        {
            status["verification_nonce"] = verification.Nonce;
        }

        return status;
    }

    private static JsonObject VerifyStatus(KmsCore core)
    {
        var attempt = core.Rekey;
        var verification = attempt?.Verification ?? throw KmsException.BadRequest("no rekey verification in progress");
        return new JsonObject
        {
            ["started"] = true,
            ["nonce"] = verification.Nonce,
            ["t"] = attempt.NewThreshold,
            ["n"] = attempt.NewShares,
            ["progress"] = verification.Shares.Count,
        };
    }
}
