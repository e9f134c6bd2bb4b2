using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Seal;

/// <summary><c>sys/init</c>, <c>sys/unseal</c>, <c>sys/seal</c>, <c>sys/seal-status</c>, <c>sys/health</c>, <c>sys/leader</c>, <c>sys/rotate</c>, <c>sys/rotate/config</c>, <c>sys/key-status</c>.</summary>
internal static class SealRoutes
{
    /// <summary>The Vault version this KMS answers as (its API subset follows Vault 1.15).</summary>
    public const string Version = "1.15.0+morphisms";

    public static void Register(RouteTable routes, KmsCore core)
    {
        routes.Add(
            new Route("sys/init", "init") { Unauthenticated = true, AllowWhenSealed = true },
            (Operation.Read, (_, _, _) => Raw(new JsonObject { ["initialized"] = core.Initialized })),
            (Operation.Update, (r, _, ct) => InitAsync(core, r, ct)));
        routes.Add(
            new Route("sys/unseal", "unseal") { Unauthenticated = true, AllowWhenSealed = true },
            (Operation.Update, (r, _, ct) => UnsealAsync(core, r, ct)));
        routes.Add(
            new Route("sys/seal-status", "seal-status") { Unauthenticated = true, AllowWhenSealed = true },
            (Operation.Read, (_, _, _) => Raw(SealStatus(core))));
        routes.Add(
            new Route("sys/health", "health") { Unauthenticated = true, AllowWhenSealed = true },
            (Operation.Read, (r, _, _) => Task.FromResult<KmsResponse?>(Health(core, r))));
        routes.Add(
            new Route("sys/leader", "leader") { Unauthenticated = true, AllowWhenSealed = true },
            (Operation.Read, async (_, _, ct) => core.Sealed ? throw KmsException.Sealed() : new KmsResponse { RawBody = await LeaderAsync(core, ct).ConfigureAwait(false) }));
        routes.Add(
            new Route("sys/seal", "seal") { Sudo = true },
            (Operation.Update, async (r, _, ct) =>
            {
                r.RequireState().Audit?.Notice("seal requested");
                await core.BeginSealAsync(ct).ConfigureAwait(false);
                return null;
            }));
        routes.Add(
            new Route("sys/rotate", "rotate") { Sudo = true },
            (Operation.Update, async (r, _, ct) =>
            {
                await r.RequireState().RotateAsync(core.Time.GetUtcNow(), ct).ConfigureAwait(false);
                return null;
            }));
        routes.Add(
            new Route("sys/rotate/config", "rotate/config") { Sudo = true },
            (Operation.Read, (r, _, _) => Task.FromResult<KmsResponse?>(KmsResponse.WithData(RotateConfig(r.RequireState().Rotation.Config)))),
            (Operation.Update, (r, _, ct) => UpdateRotateConfigAsync(core, r, ct)));
        routes.Add(
            new Route("sys/key-status", "key-status"),
            (Operation.Read, (r, _, _) =>
            {
                var keyring = r.RequireState().Barrier.Keyring;
                var active = keyring.Terms.Single(t => t.Term == keyring.ActiveTerm);
                return Task.FromResult<KmsResponse?>(KmsResponse.WithData(new JsonObject
                {
                    ["term"] = active.Term,
                    ["install_time"] = Timestamps.Rfc3339(active.InstallTime),
                    ["encryptions"] = keyring.Encryptions,
                    ["terms"] = keyring.Terms.Count(),
                }));
            }));
    }

    private static JsonObject RotateConfig(RotationConfig config) => new()
    {
        ["max_operations"] = config.MaxOperations,
        ["interval"] = Durations.ToGoString(config.Interval),
        ["enabled"] = config.Enabled,
    };

    /// <summary>
    /// <c>POST sys/rotate/config</c>: <c>max_operations</c>, <c>interval</c>, <c>enabled</c>; those absent keep their
    /// value. Everything is checked before anything is stored (400 naming the field).
    /// </summary>
    private static async Task<KmsResponse?> UpdateRotateConfigAsync(KmsCore core, KmsRequest request, CancellationToken ct)
    {
        var f = request.Fields;
        Pki.PkiRole.RejectUnknown(f, ["max_operations", "interval", "enabled"]);
        var maxOperations = f.Int("max_operations");
        var min = core.Options.MinRotateMaxOperations;
        if (maxOperations is { } max && (max < min || max > RotationConfig.MaxOperationsLimit))
        {
            throw KmsException.BadRequest($"invalid 'max_operations': must be between {min} and {RotationConfig.MaxOperationsLimit} (NIST SP 800-38D allows 2^32 random-nonce AES-GCM encryptions per key)");
        }

        var interval = f.Duration("interval");
        if (interval is { } i && i != TimeSpan.Zero && (i < RotationConfig.MinInterval || i > Durations.Max))
        {
            throw KmsException.BadRequest($"invalid 'interval': must be 0 (no time-based rotation) or between {Durations.ToGoString(RotationConfig.MinInterval)} and {Durations.ToGoString(Durations.Max)}");
        }

        var enabled = f.Bool("enabled");
        var state = request.RequireState();
        var config = await state.Rotation.UpdateConfigAsync(maxOperations, interval, enabled, ct).ConfigureAwait(false);
        state.Audit?.Notice($"barrier key rotation config: max_operations {config.MaxOperations}, interval {Durations.ToGoString(config.Interval)}, enabled {(config.Enabled ? "true" : "false")}");
        return null;
    }

    /// <summary>The seal-status object (also returned by sys/unseal).</summary>
    public static JsonObject SealStatus(KmsCore core)
    {
        var config = core.SealConfig;
        var status = new JsonObject
        {
            ["type"] = core.Options.AutoUnseal?.Type ?? "shamir",
            ["initialized"] = config is not null,
            ["sealed"] = core.Sealed,
            ["t"] = config?.SecretThreshold ?? 0,
            ["n"] = config?.SecretShares ?? 0,
            ["progress"] = core.UnsealProgressCount,
            ["nonce"] = core.UnsealNonce,
            ["version"] = Version,
            ["build_date"] = "2026-01-01T00:00:00Z",
            ["migration"] = false,
            ["recovery_seal"] = core.Options.AutoUnseal is not null,
            ["storage_type"] = core.StorageType,
        };
        if (core.Cluster is { } cluster)
        {
            status["cluster_name"] = cluster.Name;
            status["cluster_id"] = cluster.Id;
        }

        if (core.RootCaSha256 is { } rootCa)
        {
            // Not Vault's: the fingerprint an operator publishes so clients pin this KMS's root and no other
            // (`morph kms trust --expect-root-ca`). Public: sys/attestation serves the certificate itself to anyone.
            status["root_ca_sha256"] = rootCa;
        }

        return status;
    }

    private static async Task<KmsResponse?> InitAsync(KmsCore core, KmsRequest request, CancellationToken ct)
    {
        var f = request.Fields;
        var seal = core.Options.AutoUnseal;
        if (f.StringList("pgp_keys") is { Count: > 0 } || f.String("root_token_pgp_key") is { Length: > 0 }
            || (seal is not null && f.StringList("recovery_pgp_keys") is { Count: > 0 }))
        {
            throw KmsException.BadRequest("PGP-encrypted key shares are not supported");
        }

        // With auto-unseal (seal-status says recovery_seal), Vault's init takes recovery_shares/recovery_threshold and
        // refuses the Shamir pair; `vault operator init` sends both pairs, the unused one as zeros, so zero is absence.
        // The Shamir seal's init stays as it was: the Shamir pair, recovery parameters ignored.
        var (sharesName, thresholdName) = seal is null ? ("secret_shares", "secret_threshold") : ("recovery_shares", "recovery_threshold");
        if (seal is not null && new[] { "secret_shares", "secret_threshold" }.Where(n => f.Int(n) is not (null or 0)).ToList() is { Count: > 0 } misplaced)
        {
            throw KmsException.BadRequest($"parameters {string.Join(",", misplaced)} not applicable to seal type {seal.Type}: with auto-unseal, init takes recovery_shares and recovery_threshold");
        }

        var shares = f.Int(sharesName) ?? throw KmsException.BadRequest($"missing required parameter '{sharesName}'");
        var threshold = f.Int(thresholdName) ?? throw KmsException.BadRequest($"missing required parameter '{thresholdName}'");
        if (shares is < 0 or > int.MaxValue || threshold is < 0 or > int.MaxValue)
        {
            throw KmsException.BadRequest($"invalid seal configuration: {sharesName} and {thresholdName} must be small positive integers");
        }

        if (SealConfig.Validate((int)shares, (int)threshold, sharesName, thresholdName) is { } problem)
        {
            throw KmsException.BadRequest(problem);
        }

        // Auto-unseal starts unsealed, as in Vault: init opens it with the new unseal key before releasing the seal
        // to anyone else (a public sys/unseal share in between would otherwise mix into the replayed ones).
        var autoUnseal = seal is not null && !core.Options.Dev;
        var result = await core.InitializeAsync((int)shares, (int)threshold, autoUnseal, ct).ConfigureAwait(false);
        var hex = JsonValues.Strings(result.Keys.Select(Convert.ToHexStringLower));
        var base64 = JsonValues.Strings(result.Keys.Select(k => Convert.ToBase64String(k)));
        var body = new JsonObject { ["keys"] = hex, ["keys_base64"] = base64 };
        if (seal is not null)
        {
            // Vault's clients read the shares of an auto-unseal init as recovery keys, and they are: they authorise a
            // rekey. Unlike Vault's they also open the root key without the seal (sys/unseal when the HSM key is lost
            // or refuses), so they are unseal keys too and stay in `keys`: the same shares, under both names.
            body["recovery_keys"] = hex.DeepClone();
            body["recovery_keys_base64"] = base64.DeepClone();
        }

        body["root_token"] = result.RootToken;
        if (result.UnsealFailure is { } e)
        {
            // Init has committed: this reply is the only copy of the shares and the root token, so a failure to
            // unseal must not turn it into an error. The KMS is initialised and sealed; the shares unseal it
            // (and wrap the root key) once the cause is fixed. Exception messages carry no key material.
            var reason = e is KmsException k ? string.Join("; ", k.Errors) : $"{e.GetType().Name}: {e.Message}";
            var warning = $"the KMS is initialised but still sealed: the {core.Options.AutoUnseal!.Type} auto-unseal that follows init failed ({reason}); keep these keys and unseal with a threshold of them (sys/unseal)";
            await (core.Options.WarningWriter ?? Console.Error).WriteLineAsync("WARNING! " + warning).ConfigureAwait(false);
            body["sealed"] = true;
            body["warnings"] = JsonValues.Strings([warning]);
        }

        return new KmsResponse { RawBody = body };
    }

    private static async Task<KmsResponse?> UnsealAsync(KmsCore core, KmsRequest request, CancellationToken ct)
    {
        var f = request.Fields;
        if (f.Bool("migrate") == true)
        {
            throw KmsException.BadRequest("seal migration is not supported");
        }

        if (f.Bool("reset") == true)
        {
            await core.ResetUnsealAsync(ct).ConfigureAwait(false);
            return new KmsResponse { RawBody = SealStatus(core) };
        }

        var key = f.String("key");
        if (string.IsNullOrEmpty(key))
        {
            throw KmsException.BadRequest("'key' must be specified in request body as JSON, or 'reset' set to true");
        }

        await core.SubmitUnsealKeyAsync(DecodeKey(key), ct).ConfigureAwait(false);
        return new KmsResponse { RawBody = SealStatus(core) };
    }

    /// <summary>Unseal keys come hex-encoded (as <c>keys</c>) or base64-encoded (as <c>keys_base64</c>).</summary>
    internal static byte[] DecodeKey(string key) => DecodeKey(key, new byte[key.Length]);

    /// <summary>
    /// <see cref="DecodeKey(string)"/> decoding base64 into <paramref name="scratch"/> (at least
    /// <c>key.Length</c> bytes), zeroed before returning: the share lives on only in the array returned.
    /// </summary>
    internal static byte[] DecodeKey(string key, byte[] scratch)
    {
        if (key.Length % 2 == 0 && key.All(char.IsAsciiHexDigit))
        {
            return Convert.FromHexString(key);
        }

        try
        {
            return Convert.TryFromBase64String(key, scratch, out var written)
                ? scratch[..written]
                : throw KmsException.BadRequest("'key' must be a valid hex or base64 string");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scratch);
        }
    }

    private static KmsResponse Health(KmsCore core, KmsRequest request)
    {
        var f = request.Fields;
        int Code(string name, int fallback)
        {
            var v = f.Int(name);
            return v is null ? fallback : v is >= 100 and <= 599 ? (int)v : throw KmsException.BadRequest($"invalid value for parameter '{name}': expected an HTTP status code");
        }

        // Parsed for validation even when unused: there are no performance standbys or DR secondaries.
        var standbyOk = f.Bool("standbyok") == true;
        _ = f.Bool("perfstandbyok");
        var standbyCode = Code("standbycode", 429);
        _ = Code("performancestandbycode", 473);
        _ = Code("drsecondarycode", 472);
        var standby = core.Standby;
        var status = !core.Initialized ? Code("uninitcode", 501)
            : core.Sealed ? Code("sealedcode", 503)
            : standby && !standbyOk ? standbyCode
            : Code("activecode", 200);
        var body = new JsonObject
        {
            ["initialized"] = core.Initialized,
            ["sealed"] = core.Sealed,
            ["standby"] = standby,
            ["performance_standby"] = false,
            ["replication_performance_mode"] = "disabled",
            ["replication_dr_mode"] = "disabled",
            ["server_time_utc"] = core.Time.GetUtcNow().ToUnixTimeSeconds(),
            ["version"] = Version,
            ["enterprise"] = false,
            ["echo_duration_ms"] = 0,
            ["clock_skew_ms"] = 0,
        };
        if (core.Cluster is { } cluster)
        {
            body["cluster_name"] = cluster.Name;
            body["cluster_id"] = cluster.Id;
        }

        return new KmsResponse { StatusCode = status, RawBody = body };
    }

    /// <summary>sys/leader: who the active node is. Without HA, this node (if unsealed) is the only one.</summary>
    private static async Task<JsonObject> LeaderAsync(KmsCore core, CancellationToken ct)
    {
        var election = core.Election;
        var self = election is { IsActive: true };
        var leader = self || election is null ? null : await election.CurrentLeaderAsync(ct).ConfigureAwait(false);
        return new JsonObject
        {
            ["ha_enabled"] = election is not null,
            ["is_self"] = self,
            ["active_time"] = self ? Timestamps.Rfc3339(election!.ActiveSince) : "0001-01-01T00:00:00Z",
            ["leader_address"] = self ? election!.Address : leader?.Address?.AbsoluteUri.TrimEnd('/') ?? "",
            ["leader_cluster_address"] = "",
            ["performance_standby"] = false,
            ["performance_standby_last_remote_wal"] = 0,
        };
    }

    private static Task<KmsResponse?> Raw(JsonObject body) => Task.FromResult<KmsResponse?>(new KmsResponse { RawBody = body });
}
