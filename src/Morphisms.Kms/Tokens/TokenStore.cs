using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Tokens;

/// <summary>
/// Token lifecycle: create, validate (expiry, parent chain, use count), renew, revoke with children.
/// Layout under the barrier: <c>sys/token/id/HASH</c> (entry), <c>sys/token/accessor/HMAC(accessor)</c>
/// (index), <c>sys/token/parent/PARENT/CHILD</c> (tree), <c>sys/token/salt</c> (the HMAC key).
/// An expired token is refused (and removed) the first time it is presented, and removed with its children by
/// <see cref="SweepExpiredAsync"/>, which the active node runs periodically, whether presented or not.
/// </summary>
internal sealed class TokenStore
{
    /// <summary>Where the HMAC key of token hashes lives.</summary>
    public const string SaltPath = "sys/token/salt";

    private const string IdPrefix = "sys/token/id/";
    private const string AccessorPrefix = "sys/token/accessor/";
    private const string ParentPrefix = "sys/token/parent/";
    private const int MaxParentDepth = 64;

    private readonly ISecureStorage _storage;
    private readonly byte[] _salt;
    private readonly TimeProvider _time;
    private readonly TokenStoreOptions _options;
    private readonly SemaphoreSlim _mutate = new(1, 1);

    public TokenStore(ISecureStorage storage, byte[] salt, TimeProvider time, TokenStoreOptions options)
    {
        _storage = storage;
        _salt = salt;
        _time = time;
        _options = options;
    }

    /// <summary>The token lifetime limits.</summary>
    public TokenStoreOptions Options => _options;

    /// <summary>HMAC-SHA256 of a token or accessor under the salt, hex.</summary>
    public string Hash(string value) => Convert.ToHexStringLower(HMACSHA256.HashData(_salt, Encoding.UTF8.GetBytes(value)));

    /// <summary>Creates a token, returning its value (shown once) and entry.</summary>
    public async Task<(string Token, TokenEntry Entry, List<string> Warnings)> CreateAsync(TokenCreateRequest request, CancellationToken ct)
    {
        if (request.CustomId is null && request.ParentHash is null)
        {
            var writes = new WriteSet();
            var created = PrepareOrphan(request, writes);
            await writes.CommitAsync(ct).ConfigureAwait(false);
            return created;
        }

        var warnings = new List<string>();
        var (token, entry) = NewEntry(request, warnings);
        await _mutate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (await _storage.GetAsync(IdPrefix + entry.Hash, ct).ConfigureAwait(false) is not null)
            {
                throw KmsException.BadRequest("cannot create a token with this id: it is already in use");
            }

            var ops = new List<(string, byte[]?)>
            {
                (IdPrefix + entry.Hash, SecureStorageJson.ToJson(entry)),
                (AccessorPrefix + Hash(entry.Accessor), SecureStorageJson.ToJson(new AccessorIndex(entry.Hash))),
            };
            if (entry.ParentHash is not null)
            {
                ops.Add((ParentPrefix + entry.ParentHash + "/" + entry.Hash, "{}"u8.ToArray()));
            }

            await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
        }
        finally
        {
            _mutate.Release();
        }

        return (token, entry, warnings);
    }

    /// <summary>
    /// Makes a fresh random orphan token (what every attest-login gets) and adds its writes to
    /// <paramref name="writes"/> instead of committing them, so the caller can commit it together with what it
    /// issues alongside. The token is valid once <paramref name="writes"/> is committed, and never exists otherwise.
    /// </summary>
    /// <exception cref="ArgumentException">The request names a custom id or a parent.</exception>
    public (string Token, TokenEntry Entry, List<string> Warnings) PrepareOrphan(TokenCreateRequest request, WriteSet writes)
    {
        if (request.CustomId is not null || request.ParentHash is not null)
        {
            throw new ArgumentException("only a random orphan token can be prepared; custom ids and children go through CreateAsync", nameof(request));
        }

        // A random orphan cannot collide with an existing id and joins no tree a revocation could be walking, so it
        // needs neither the existence check nor the store-wide lock: concurrent logins share their commits.
        var warnings = new List<string>();
        var (token, entry) = NewEntry(request, warnings);
        writes.Add(_storage, IdPrefix + entry.Hash, SecureStorageJson.ToJson(entry));
        writes.Add(_storage, AccessorPrefix + Hash(entry.Accessor), SecureStorageJson.ToJson(new AccessorIndex(entry.Hash)));
        return (token, entry, warnings);
    }

    private (string Token, TokenEntry Entry) NewEntry(TokenCreateRequest request, List<string> warnings)
    {
        var now = _time.GetUtcNow();
        var ttl = ComputeTtl(request, warnings);
        var token = request.CustomId ?? TokenGenerator.NewToken();
        var entry = new TokenEntry
        {
            Hash = Hash(token),
            Accessor = TokenGenerator.NewAccessor(),
            ParentHash = request.ParentHash,
            Policies = [.. request.Policies],
            Meta = new(request.Meta, StringComparer.Ordinal),
            DisplayName = request.DisplayName,
            NumUses = request.NumUses,
            CreationTime = now,
            CreationTtl = (long)ttl.TotalSeconds,
            ExplicitMaxTtl = (long)request.ExplicitMaxTtl.TotalSeconds,
            Period = (long)request.Period.TotalSeconds,
            ExpireTime = ttl > TimeSpan.Zero ? now + ttl : null,
            Renewable = request.Renewable && ttl > TimeSpan.Zero,
            Path = request.Path,
            InternalData = request.InternalData,
        };
        return (token, entry);
    }

    /// <summary>
    /// Validates a presented token and counts one use. Null when it is unknown, expired, revoked, used up,
    /// or any ancestor is no longer valid (then the token and its subtree are revoked on the spot).
    /// </summary>
    public async Task<TokenEntry?> UseAsync(string token, CancellationToken ct)
    {
        var entry = await LookupValidAsync(Hash(token), ct).ConfigureAwait(false);
        if (entry is null || entry.NumUses == 0)
        {
            return entry;
        }

        await _mutate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // Re-read under the lock so two concurrent uses cannot both spend the last use.
            var fresh = await ReadAsync(entry.Hash, ct).ConfigureAwait(false);
            if (fresh is null || fresh.NumUses == 0)
            {
                return null;
            }

            fresh.NumUses--;
            if (fresh.NumUses == 0)
            {
                // The last use: this request proceeds, the token is gone for the next one.
                await RevokeTreeLockedAsync(fresh.Hash, ct).ConfigureAwait(false);
                fresh.NumUses = -1;
            }
            else
            {
                await _storage.PutJsonAsync(IdPrefix + fresh.Hash, fresh, ct).ConfigureAwait(false);
            }

            return fresh;
        }
        finally
        {
            _mutate.Release();
        }
    }

    /// <summary>The valid token with this value (no use counted), or null.</summary>
    public Task<TokenEntry?> LookupAsync(string token, CancellationToken ct) => LookupValidAsync(Hash(token), ct);

    /// <summary>The valid token with this accessor, or null.</summary>
    public async Task<TokenEntry?> LookupByAccessorAsync(string accessor, CancellationToken ct)
    {
        var index = await _storage.GetJsonAsync<AccessorIndex>(AccessorPrefix + Hash(accessor), ct).ConfigureAwait(false);
        return index is null ? null : await LookupValidAsync(index.TokenHash, ct).ConfigureAwait(false);
    }

    /// <summary>The valid token with this hash, or null (expired or orphaned-by-expiry tokens are revoked here).</summary>
    public async Task<TokenEntry?> LookupValidAsync(string hash, CancellationToken ct)
    {
        var entry = await ReadAsync(hash, ct).ConfigureAwait(false);
        if (entry is null)
        {
            return null;
        }

        var now = _time.GetUtcNow();
        var current = entry;
        for (var depth = 0; ; depth++)
        {
            if (current.ExpireTime is { } expiry && expiry <= now)
            {
                // An expired token, or an expired ancestor, invalidates the whole subtree under it.
                await RevokeTreeAsync(current.Hash, ct).ConfigureAwait(false);
                return null;
            }

            if (current.ParentHash is null)
            {
                return entry;
            }

            var parent = depth < MaxParentDepth ? await ReadAsync(current.ParentHash, ct).ConfigureAwait(false) : null;
            if (parent is null)
            {
                await RevokeTreeAsync(entry.Hash, ct).ConfigureAwait(false);
                return null;
            }

            current = parent;
        }
    }

    /// <summary>
    /// Extends a token's TTL by <paramref name="increment"/> (or its original TTL, or <paramref name="limits"/>'
    /// default), capped by its max TTLs and by <paramref name="limits"/>' end, which the issuing auth method sets from
    /// what it grants now.
    /// </summary>
    public async Task<(TokenEntry Entry, List<string> Warnings)> RenewAsync(string hash, TimeSpan increment, CancellationToken ct, RenewalLimits? limits = null)
    {
        await _mutate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var entry = await ReadAsync(hash, ct).ConfigureAwait(false) ?? throw new KmsException(403, "bad token");
            var warnings = new List<string>();
            if (entry.ExpireTime is null)
            {
                // A token without expiry (root) has nothing to extend.
                return (entry, warnings);
            }

            if (!entry.Renewable)
            {
                throw KmsException.BadRequest("lease is not renewable");
            }

            // The caller found the token valid before waiting for the lock; it may have expired meanwhile, and an
            // expired token stays expired.
            var now = _time.GetUtcNow();
            if (entry.ExpireTime <= now)
            {
                throw new KmsException(403, "bad token");
            }

            var ttl = entry.Period > 0 ? TimeSpan.FromSeconds(entry.Period)
                : increment > TimeSpan.Zero ? increment : limits?.DefaultTtl ?? TimeSpan.FromSeconds(entry.CreationTtl);
            var maxEnd = MaxEnd(entry);
            if (limits is { MaxEnd: var authEnd } && (maxEnd is null || authEnd < maxEnd))
            {
                maxEnd = authEnd;
            }

            if (maxEnd <= now)
            {
                // The issuing auth method's max TTL shrank below the token's age: nothing is left to renew.
                throw KmsException.BadRequest("the token has reached its max TTL, not renewing");
            }

            var end = now + ttl;
            if (maxEnd is { } cap && end > cap)
            {
                warnings.Add(string.Create(CultureInfo.InvariantCulture,
                    $"TTL of \"{Durations.ToGoString(ttl)}\" exceeded the effective max_ttl of \"{Durations.ToGoString(cap - now)}\"; TTL value is capped accordingly"));
                end = cap;
            }

            entry.ExpireTime = end;
            entry.LastRenewal = now;
            await _storage.PutJsonAsync(IdPrefix + entry.Hash, entry, ct).ConfigureAwait(false);
            return (entry, warnings);
        }
        finally
        {
            _mutate.Release();
        }
    }

    /// <summary>Revokes a token and every descendant, atomically.</summary>
    public async Task RevokeTreeAsync(string hash, CancellationToken ct)
    {
        await _mutate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await RevokeTreeLockedAsync(hash, ct).ConfigureAwait(false);
        }
        finally
        {
            _mutate.Release();
        }
    }

    /// <summary>Revokes a token only; its children become orphans (Vault's <c>revoke-orphan</c>).</summary>
    public async Task RevokeOrphanAsync(string hash, CancellationToken ct)
    {
        await _mutate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var entry = await ReadAsync(hash, ct).ConfigureAwait(false);
            if (entry is null)
            {
                return;
            }

            var ops = DeleteOps(entry);
            foreach (var child in await _storage.ListAsync(ParentPrefix + hash + "/", ct).ConfigureAwait(false))
            {
                ops.Add((ParentPrefix + hash + "/" + child, null));
                if (await ReadAsync(child, ct).ConfigureAwait(false) is { } c)
                {
                    c.ParentHash = null;
                    ops.Add((IdPrefix + c.Hash, SecureStorageJson.ToJson(c)));
                }
            }

            await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
        }
        finally
        {
            _mutate.Release();
        }
    }

    /// <summary>
    /// Revokes every token that expired by now, with its children (as Vault's expiration manager revokes a token when
    /// its TTL runs out): without it an expired token that is never presented again — every instance's last login —
    /// would stay in storage, snapshots and the accessor listing for good. Reads without the store lock, then revokes
    /// at most <paramref name="batch"/> expired tokens (and their trees) per transaction, taking the lock for one
    /// batch at a time, so renewals, revocations and child creations wait for one small transaction at most.
    /// </summary>
    /// <returns>How many expired tokens were revoked (children not counted).</returns>
    public async Task<int> SweepExpiredAsync(int batch, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var expired = new List<string>();
        foreach (var key in await _storage.ListAsync(IdPrefix, ct).ConfigureAwait(false))
        {
            if (await ReadAsync(key, ct).ConfigureAwait(false) is { ExpireTime: { } end } && end <= now)
            {
                expired.Add(key);
            }
        }

        var revoked = 0;
        foreach (var chunk in expired.Chunk(batch))
        {
            await _mutate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                var ops = new List<(string, byte[]?)>();
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var hash in chunk)
                {
                    // Read again under the lock: revoked meanwhile (or swept with an expired parent above), it is gone.
                    // An expired token stays expired (RenewAsync refuses it), so the check only guards against a clock
                    // that went back.
                    if (seen.Contains(hash) || await ReadAsync(hash, ct).ConfigureAwait(false) is not { ExpireTime: { } end } || end > now)
                    {
                        continue;
                    }

                    await AddTreeDeletionsAsync(hash, ops, seen, ct).ConfigureAwait(false);
                    revoked++;
                }

                if (ops.Count > 0)
                {
                    await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
                }
            }
            finally
            {
                _mutate.Release();
            }
        }

        return revoked;
    }

    /// <summary>Every valid token's accessor.</summary>
    public async Task<List<string>> ListAccessorsAsync(CancellationToken ct)
    {
        var result = new List<string>();
        foreach (var key in await _storage.ListAsync(IdPrefix, ct).ConfigureAwait(false))
        {
            if (await LookupValidAsync(key, ct).ConfigureAwait(false) is { } entry)
            {
                result.Add(entry.Accessor);
            }
        }

        result.Sort(StringComparer.Ordinal);
        return result;
    }

    /// <summary>Seconds left before expiry (0 for non-expiring tokens).</summary>
    public long RemainingSeconds(TokenEntry entry) =>
        entry.ExpireTime is { } end ? Math.Max(0, (long)Math.Ceiling((end - _time.GetUtcNow()).TotalSeconds)) : 0;

    private TimeSpan ComputeTtl(TokenCreateRequest request, List<string> warnings)
    {
        var isRoot = request.Policies.Contains(Policies.BuiltinPolicies.Root);
        TimeSpan ttl;
        if (request.Period > TimeSpan.Zero)
        {
            ttl = request.Period;
        }
        else if (request.Ttl is { } requested && requested > TimeSpan.Zero)
        {
            ttl = requested;
        }
        else if (isRoot && request.ExplicitMaxTtl == TimeSpan.Zero)
        {
            return TimeSpan.Zero;
        }
        else
        {
            ttl = _options.DefaultTtl;
        }

        if (request.ExplicitMaxTtl > TimeSpan.Zero && ttl > request.ExplicitMaxTtl)
        {
            ttl = request.ExplicitMaxTtl;
        }

        if (request.Period == TimeSpan.Zero && ttl > _options.MaxTtl)
        {
            warnings.Add(string.Create(CultureInfo.InvariantCulture,
                $"TTL of \"{Durations.ToGoString(ttl)}\" exceeded the effective max_ttl of \"{Durations.ToGoString(_options.MaxTtl)}\"; TTL value is capped accordingly"));
            ttl = _options.MaxTtl;
        }

        return ttl;
    }

    private DateTimeOffset? MaxEnd(TokenEntry entry)
    {
        DateTimeOffset? cap = null;
        if (entry.ExplicitMaxTtl > 0)
        {
            cap = entry.CreationTime.AddSeconds(entry.ExplicitMaxTtl);
        }

        if (entry.Period == 0)
        {
            var system = entry.CreationTime + _options.MaxTtl;
            cap = cap is null || system < cap ? system : cap;
        }

        return cap;
    }

    private Task<TokenEntry?> ReadAsync(string hash, CancellationToken ct) =>
        IsHex(hash) ? _storage.GetJsonAsync<TokenEntry>(IdPrefix + hash, ct) : Task.FromResult<TokenEntry?>(null);

    private async Task RevokeTreeLockedAsync(string hash, CancellationToken ct)
    {
        var ops = new List<(string, byte[]?)>();
        await AddTreeDeletionsAsync(hash, ops, new HashSet<string>(StringComparer.Ordinal), ct).ConfigureAwait(false);
        await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
    }

    /// <summary>Adds the deletion of a token and every descendant not in <paramref name="seen"/> to <paramref name="ops"/>.</summary>
    private async Task AddTreeDeletionsAsync(string hash, List<(string, byte[]?)> ops, HashSet<string> seen, CancellationToken ct)
    {
        var pending = new Queue<string>([hash]);
        while (pending.TryDequeue(out var current))
        {
            if (!seen.Add(current))
            {
                continue;
            }

            if (await ReadAsync(current, ct).ConfigureAwait(false) is { } entry)
            {
                ops.AddRange(DeleteOps(entry));
            }
            else
            {
                ops.Add((IdPrefix + current, null));
            }

            foreach (var child in await _storage.ListAsync(ParentPrefix + current + "/", ct).ConfigureAwait(false))
            {
                ops.Add((ParentPrefix + current + "/" + child, null));
                pending.Enqueue(child);
            }
        }
    }

    private List<(string, byte[]?)> DeleteOps(TokenEntry entry)
    {
        var ops = new List<(string, byte[]?)>
        {
            (IdPrefix + entry.Hash, null),
            (AccessorPrefix + Hash(entry.Accessor), null),
        };
        if (entry.ParentHash is not null)
        {
            ops.Add((ParentPrefix + entry.ParentHash + "/" + entry.Hash, null));
        }

        return ops;
    }

    private static bool IsHex(string s) => s.Length == 64 && s.All(char.IsAsciiHexDigitLower);

    private sealed record AccessorIndex(string TokenHash);
}

/// <summary>What the auth method that issued a token allows a renewal now.</summary>
/// <param name="DefaultTtl">The TTL of a renewal that asks for no increment.</param>
/// <param name="MaxEnd">The latest the token may be renewed to.</param>
internal sealed record RenewalLimits(TimeSpan DefaultTtl, DateTimeOffset MaxEnd);
