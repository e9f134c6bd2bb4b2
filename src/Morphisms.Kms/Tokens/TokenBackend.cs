using System.Text.Json.Nodes;
using Morphisms.Kms.Http;
using Morphisms.Kms.Policies;

namespace Morphisms.Kms.Tokens;

/// <summary>
/// The token auth method at <c>auth/token/</c>: create (child or orphan), lookup, renew and revoke, by token,
/// by accessor, or for the caller itself.
/// </summary>
internal sealed class TokenBackend : ILogicalBackend
{
    public TokenBackend()
    {
        Routes.Add(new Route("auth/token/create", "create"), (Operation.Update, (r, _, ct) => CreateAsync(r, orphanRoute: false, ct)));
        Routes.Add(new Route("auth/token/create-orphan", "create-orphan"), (Operation.Update, (r, _, ct) => CreateAsync(r, orphanRoute: true, ct)));
        Routes.Add(new Route("auth/token/lookup", "lookup"), (Operation.Read, LookupAsync), (Operation.Update, LookupAsync));
        Routes.Add(new Route("auth/token/lookup-self", "lookup-self"), (Operation.Read, LookupSelf), (Operation.Update, LookupSelf));
        Routes.Add(new Route("auth/token/lookup-accessor", "lookup-accessor"), (Operation.Update, LookupAccessorAsync));
        Routes.Add(new Route("auth/token/renew", "renew"), (Operation.Update, RenewAsync));
        Routes.Add(new Route("auth/token/renew-self", "renew-self"), (Operation.Update, RenewSelfAsync));
        Routes.Add(new Route("auth/token/renew-accessor", "renew-accessor"), (Operation.Update, RenewAccessorAsync));
        Routes.Add(new Route("auth/token/revoke", "revoke"), (Operation.Update, RevokeAsync));
        Routes.Add(new Route("auth/token/revoke-self", "revoke-self"), (Operation.Update, RevokeSelfAsync));
        Routes.Add(new Route("auth/token/revoke-accessor", "revoke-accessor"), (Operation.Update, RevokeAccessorAsync));
        Routes.Add(new Route("auth/token/revoke-orphan", "revoke-orphan") { Sudo = true }, (Operation.Update, RevokeOrphanAsync));
        Routes.Add(new Route("auth/token/accessors", "accessors/?") { Sudo = true }, (Operation.List, ListAccessorsAsync));
    }

    /// <inheritdoc />
    public string Type => "token";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();

    private static async Task<KmsResponse?> CreateAsync(KmsRequest request, bool orphanRoute, CancellationToken ct)
    {
        var state = request.RequireState();
        var parent = request.Token!;

        // As in Vault: a use-limited token (its count, or -1 on its last use) must not turn itself into an unlimited one.
        if (parent.NumUses != 0)
        {
            throw KmsException.BadRequest("restricted use token cannot generate child tokens");
        }

        var f = request.Fields;
        var privileged = parent.IsRoot || request.Acl!.Allows(Operation.Update, request.Path, sudo: true);

        // Go's api.TokenCreateRequest (the vault CLI, api.Auth().Token().Create) always sends entity_alias, as "" when
        // unset; Vault reads "" as not given, so only a value is refused.
        foreach (var unsupported in new[] { "role_name", "entity_alias", "bound_cidrs" })
        {
            if (f.HasValue(unsupported))
            {
                throw KmsException.BadRequest($"parameter '{unsupported}' is not supported");
            }
        }

        if (f.String("type") is { } type && type is not ("service" or "default" or ""))
        {
            throw KmsException.BadRequest("only service tokens are supported");
        }

        var noParent = f.Bool("no_parent") ?? false;
        if (noParent && !orphanRoute && !privileged)
        {
            throw KmsException.BadRequest("root or sudo privileges required to create orphan token");
        }

        // As in Vault, an empty id is no custom id (a client may send "id":"" for "generate one").
        var customId = f.String("id") is { Length: > 0 } id ? id : null;
        if (customId is not null)
        {
            if (!privileged)
            {
                throw KmsException.BadRequest("root or sudo privileges required to specify token id");
            }

            if (customId.Length > 256 || !customId.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
            {
                throw KmsException.BadRequest("invalid token id: use 1-256 letters, digits, '.', '-' and '_'");
            }
        }

        var period = f.Duration("period") ?? TimeSpan.Zero;
        if (period > TimeSpan.Zero && !privileged)
        {
            throw KmsException.BadRequest("root or sudo privileges required to create periodic token");
        }

        var noDefault = f.Bool("no_default_policy") ?? false;
        var requested = RequestedPolicies(f.StringList("policies"));
        HashSet<string> policies;
        if (requested is null || requested.Count == 0)
        {
            policies = [.. parent.Policies];
        }
        else
        {
            if (!parent.IsRoot && requested.Contains(BuiltinPolicies.Root))
            {
                throw KmsException.BadRequest("root tokens may not be created from a non-root token");
            }

            // As in Vault, `default` counts in the subset check and is added only when the parent has it (or the
            // caller is root/sudo): a token without it (every function token) must not gain it through a child,
            // since an operator-edited `default` could grant more than the parent holds.
            if (!privileged && !requested.All(parent.Policies.Contains))
            {
                throw KmsException.BadRequest("child policies must be subset of parent");
            }

            policies = requested;
            if (!policies.Contains(BuiltinPolicies.Root) && (privileged || parent.Policies.Contains(BuiltinPolicies.Default)))
            {
                policies.Add(BuiltinPolicies.Default);
            }
        }

        if (noDefault)
        {
            policies.Remove(BuiltinPolicies.Default);
        }

        var meta = f.StringMap("meta") ?? [];
        if (meta.Count > 64 || meta.Any(m => m.Key.Length is 0 or > 128 || m.Value.Length > 512))
        {
            throw KmsException.BadRequest("meta may hold at most 64 keys of 1-128 characters with values of at most 512");
        }

        // An owner's name is an authority to approve function updates (Updates/OwnerIdentity): only root grants it.
        if (meta.ContainsKey(Updates.OwnerIdentity.MetadataKey) && !parent.IsRoot)
        {
            throw new KmsException(403, $"only a root token may set the meta key '{Updates.OwnerIdentity.MetadataKey}'");
        }

        var displayName = f.String("display_name") is { Length: > 0 } name ? "token-" + Sanitize(name) : "token";
        var (token, entry, warnings) = await state.Tokens.CreateAsync(
            new TokenCreateRequest
            {
                Policies = [.. policies.Order(StringComparer.Ordinal)],
                Meta = meta,
                ParentHash = orphanRoute || noParent ? null : parent.Hash,
                Ttl = f.Duration("ttl") ?? f.Duration("lease"),
                ExplicitMaxTtl = f.Duration("explicit_max_ttl") ?? TimeSpan.Zero,
                Period = period,
                Renewable = f.Bool("renewable") ?? true,
                NumUses = f.NonNegativeInt("num_uses") ?? 0,
                DisplayName = displayName,
                Path = request.Path,
                CustomId = customId,
            },
            ct).ConfigureAwait(false);

        var response = new KmsResponse { Auth = TokenResponses.Auth(token, entry, state.Tokens.RemainingSeconds(entry)) };
        response.Warnings.AddRange(warnings);
        return response;
    }

    private static async Task<KmsResponse?> LookupAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var state = request.RequireState();
        var token = request.Fields.String("token") is { Length: > 0 } t ? t : request.ClientToken!;
        var entry = await state.Tokens.LookupAsync(token, ct).ConfigureAwait(false) ?? throw new KmsException(403, "bad token");
        return KmsResponse.WithData(TokenResponses.Lookup(token, entry, state.Tokens.RemainingSeconds(entry)));
    }

    private static Task<KmsResponse?> LookupSelf(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var state = request.RequireState();
        var entry = request.Token!;
        return Task.FromResult<KmsResponse?>(KmsResponse.WithData(TokenResponses.Lookup(request.ClientToken!, entry, state.Tokens.RemainingSeconds(entry))));
    }

    private static async Task<KmsResponse?> LookupAccessorAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var state = request.RequireState();
        var entry = await ByAccessorAsync(request, ct).ConfigureAwait(false);
        return KmsResponse.WithData(TokenResponses.Lookup("", entry, state.Tokens.RemainingSeconds(entry)));
    }

    private static async Task<KmsResponse?> RenewAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var state = request.RequireState();
        var token = request.Fields.RequiredString("token");
        var entry = await state.Tokens.LookupAsync(token, ct).ConfigureAwait(false) ?? throw KmsException.BadRequest("token not found");
        return await RenewEntryAsync(request, token, entry, ct).ConfigureAwait(false);
    }

    private static Task<KmsResponse?> RenewSelfAsync(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        RenewEntryAsync(request, request.ClientToken!, request.Token!, ct);

    private static async Task<KmsResponse?> RenewAccessorAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var entry = await ByAccessorAsync(request, ct).ConfigureAwait(false);
        return await RenewEntryAsync(request, null, entry, ct).ConfigureAwait(false);
    }

    private static async Task<KmsResponse?> RenewEntryAsync(KmsRequest request, string? token, TokenEntry entry, CancellationToken ct)
    {
        var state = request.RequireState();
        var increment = request.Fields.Duration("increment") ?? TimeSpan.Zero;

        // As Vault asks the issuing auth method: an attest-login token is renewed only while the function's registration
        // still grants what it holds, and within the registration's TTLs as they are now.
        var limits = await Attest.AttestRenewal.LimitsAsync(state.Functions, entry, ct).ConfigureAwait(false);
        var (renewed, warnings) = await state.Tokens.RenewAsync(entry.Hash, increment, ct, limits).ConfigureAwait(false);
        var response = new KmsResponse { Auth = TokenResponses.Auth(token, renewed, state.Tokens.RemainingSeconds(renewed)) };
        response.Warnings.AddRange(warnings);
        return response;
    }

    private static async Task<KmsResponse?> RevokeAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var state = request.RequireState();
        var token = request.Fields.RequiredString("token");
        await state.Tokens.RevokeTreeAsync(state.Tokens.Hash(token), ct).ConfigureAwait(false);
        return null;
    }

    private static async Task<KmsResponse?> RevokeSelfAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        await request.RequireState().Tokens.RevokeTreeAsync(request.Token!.Hash, ct).ConfigureAwait(false);
        return null;
    }

    private static async Task<KmsResponse?> RevokeAccessorAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var state = request.RequireState();
        var entry = await state.Tokens.LookupByAccessorAsync(request.Fields.RequiredString("accessor"), ct).ConfigureAwait(false);
        if (entry is not null)
        {
            await state.Tokens.RevokeTreeAsync(entry.Hash, ct).ConfigureAwait(false);
        }

        return null;
    }

    private static async Task<KmsResponse?> RevokeOrphanAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var state = request.RequireState();
        var token = request.Fields.RequiredString("token");
        await state.Tokens.RevokeOrphanAsync(state.Tokens.Hash(token), ct).ConfigureAwait(false);
        return null;
    }

    private static async Task<KmsResponse?> ListAccessorsAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var accessors = await request.RequireState().Tokens.ListAccessorsAsync(ct).ConfigureAwait(false);
        return KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(accessors) });
    }

    private static async Task<TokenEntry> ByAccessorAsync(KmsRequest request, CancellationToken ct) =>
        await request.RequireState().Tokens.LookupByAccessorAsync(request.Fields.RequiredString("accessor"), ct).ConfigureAwait(false)
        ?? throw KmsException.BadRequest("invalid accessor");

    /// <summary>
    /// The policy names asked for, normalised as the policy store names them (<see cref="PolicyStore.NormalizeName"/>):
    /// a name no policy can have (a control character, say, which PostgreSQL's <c>text</c> refuses, so every request
    /// of such a token would fail on its policy read) is a 400 naming the entry. Empty entries are dropped, as Vault does.
    /// </summary>
    private static HashSet<string>? RequestedPolicies(List<string>? names)
    {
        if (names is null)
        {
            return null;
        }

        var result = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < names.Count; i++)
        {
            if (names[i].Trim().Length == 0)
            {
                continue;
            }

            try
            {
                result.Add(PolicyStore.NormalizeName(names[i]));
            }
            catch (KmsException)
            {
                throw KmsException.BadRequest($"invalid value for parameter 'policies[{i}]': expected a policy name of 1-128 letters, digits and -_./@+=");
            }
        }

        return result;
    }

    private static string Sanitize(string name) =>
        new([.. name.Take(64).Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-')]);
}
