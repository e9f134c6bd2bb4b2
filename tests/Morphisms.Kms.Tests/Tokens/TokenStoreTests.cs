using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Tests.Tokens;

public class TokenStoreTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
    private readonly InMemoryStorage _physical = new();
    private readonly TokenStore _store;

    public TokenStoreTests()
    {
        var barrier = new BarrierStorage(_physical, Keyring.Create(_time.GetUtcNow()));
        _store = new TokenStore(barrier, RandomNumberGenerator.GetBytes(32), _time, new TokenStoreOptions(TimeSpan.FromHours(1), TimeSpan.FromHours(4)));
    }

    [Fact]
    public async Task Tokens_are_stored_only_as_hashes_and_expire_on_time()
    {
        var (token, entry, _) = await Create(ttl: TimeSpan.FromMinutes(10));

        Assert.StartsWith("hvs.", token, StringComparison.Ordinal);
        Assert.Equal(36, token.Length);
        var everything = string.Join("\n", _physical.Snapshot().Select(e => e.Key + "=" + Encoding.Latin1.GetString(e.Value)));
        Assert.DoesNotContain(token, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(token[4..], everything, StringComparison.Ordinal);
        Assert.Contains("sys/token/id/" + entry.Hash, _physical.Snapshot().Keys);

        Assert.NotNull(await _store.UseAsync(token, default));
        Assert.Equal(600, _store.RemainingSeconds(entry));
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Null(await _store.UseAsync(token, default));

        // Expired tokens are removed the first time they are presented.
        Assert.DoesNotContain("sys/token/id/" + entry.Hash, _physical.Snapshot().Keys);
    }

    [Fact]
    public async Task Default_ttl_applies_and_is_capped_by_the_max_with_a_warning()
    {
        var (_, byDefault, _) = await Create(ttl: null);
        Assert.Equal(3600, byDefault.CreationTtl);

        var (_, capped, warnings) = await Create(ttl: TimeSpan.FromHours(10));
        Assert.Equal(4 * 3600, capped.CreationTtl);
        Assert.Contains("capped", Assert.Single(warnings), StringComparison.Ordinal);

        var (_, explicitMax, _) = await Create(ttl: TimeSpan.FromHours(1), explicitMax: TimeSpan.FromMinutes(5));
        Assert.Equal(300, explicitMax.CreationTtl);

        var (_, root, _) = await _store.CreateAsync(new TokenCreateRequest { Policies = ["root"] }, default);
        Assert.Null(root.ExpireTime);
        Assert.False(root.Renewable);
    }

    [Fact]
    public async Task Renew_extends_from_now_up_to_explicit_max_ttl()
    {
        var (token, entry, _) = await Create(ttl: TimeSpan.FromMinutes(30), explicitMax: TimeSpan.FromMinutes(50));
        _time.Advance(TimeSpan.FromMinutes(20));

        var (renewed, warnings) = await _store.RenewAsync(entry.Hash, TimeSpan.Zero, default);
        Assert.Equal(_time.GetUtcNow().AddMinutes(30), renewed.ExpireTime);
        Assert.Empty(warnings);

        _time.Advance(TimeSpan.FromMinutes(20));
        (renewed, warnings) = await _store.RenewAsync(entry.Hash, TimeSpan.FromMinutes(30), default);
        Assert.Equal(entry.CreationTime.AddMinutes(50), renewed.ExpireTime);
        Assert.Contains("capped", Assert.Single(warnings), StringComparison.Ordinal);

        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Null(await _store.UseAsync(token, default));
    }

    /// <summary>A renewal that reaches the store after the token expired (it waited for the lock) does not revive it.</summary>
    [Fact]
    public async Task An_expired_token_is_not_renewed()
    {
        var (token, entry, _) = await Create(ttl: TimeSpan.FromMinutes(5));
        _time.Advance(TimeSpan.FromMinutes(5));

        var e = await Assert.ThrowsAsync<KmsException>(() => _store.RenewAsync(entry.Hash, TimeSpan.Zero, default));
        Assert.Equal(403, e.StatusCode);
        Assert.Null(await _store.UseAsync(token, default));
    }

    [Fact]
    public async Task Non_renewable_tokens_cannot_be_renewed()
    {
        var (_, entry, _) = await Create(ttl: TimeSpan.FromMinutes(5), renewable: false);
        var e = await Assert.ThrowsAsync<KmsException>(() => _store.RenewAsync(entry.Hash, TimeSpan.Zero, default));
        Assert.Equal("lease is not renewable", e.Message);
    }

    [Fact]
    public async Task Revoking_a_parent_revokes_the_whole_subtree_but_not_orphans()
    {
        var (parent, parentEntry, _) = await Create(ttl: TimeSpan.FromHours(1));
        var (child, childEntry, _) = await Create(ttl: TimeSpan.FromHours(1), parent: parentEntry.Hash);
        var (grandchild, _, _) = await Create(ttl: TimeSpan.FromHours(1), parent: childEntry.Hash);
        var (orphan, _, _) = await Create(ttl: TimeSpan.FromHours(1));

        await _store.RevokeTreeAsync(parentEntry.Hash, default);

        Assert.Null(await _store.LookupAsync(parent, default));
        Assert.Null(await _store.LookupAsync(child, default));
        Assert.Null(await _store.LookupAsync(grandchild, default));
        Assert.NotNull(await _store.LookupAsync(orphan, default));
        Assert.DoesNotContain(_physical.Snapshot().Keys, k => k.Contains(parentEntry.Hash, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_child_dies_with_an_expired_parent()
    {
        var (_, parentEntry, _) = await Create(ttl: TimeSpan.FromMinutes(5));
        var (child, _, _) = await Create(ttl: TimeSpan.FromHours(1), parent: parentEntry.Hash);
        _time.Advance(TimeSpan.FromMinutes(6));
        Assert.Null(await _store.UseAsync(child, default));
    }

    [Fact]
    public async Task Revoke_orphan_keeps_children_as_orphans()
    {
        var (_, parentEntry, _) = await Create(ttl: TimeSpan.FromHours(1));
        var (child, _, _) = await Create(ttl: TimeSpan.FromHours(1), parent: parentEntry.Hash);
        await _store.RevokeOrphanAsync(parentEntry.Hash, default);

        var survivor = await _store.LookupAsync(child, default);
        Assert.NotNull(survivor);
        Assert.True(survivor.Orphan);
    }

    [Fact]
    public async Task Use_limited_tokens_run_out()
    {
        var (token, _, _) = await Create(ttl: TimeSpan.FromHours(1), numUses: 2);
        Assert.Equal(1, (await _store.UseAsync(token, default))!.NumUses);
        Assert.NotNull(await _store.UseAsync(token, default));
        Assert.Null(await _store.UseAsync(token, default));
    }

    [Fact]
    public async Task Accessors_find_tokens_without_revealing_them()
    {
        var (token, entry, _) = await Create(ttl: TimeSpan.FromHours(1));
        var byAccessor = await _store.LookupByAccessorAsync(entry.Accessor, default);
        Assert.Equal(entry.Hash, byAccessor!.Hash);
        Assert.Contains(entry.Accessor, await _store.ListAccessorsAsync(default));
        Assert.Null(await _store.LookupByAccessorAsync("nope", default));
        Assert.Null(await _store.LookupAsync("hvs.not-a-token", default));
        Assert.NotNull(await _store.LookupAsync(token, default));
    }

    [Fact]
    public async Task The_sweep_revokes_expired_tokens_never_presented_with_their_children_in_batches()
    {
        var expired = new List<TokenEntry>();
        for (var i = 0; i < 5; i++)
        {
            expired.Add((await Create(ttl: TimeSpan.FromMinutes(1))).Entry);
        }

        // A child that would outlive its parent goes with it, as a revocation of the parent takes it.
        var child = (await Create(ttl: TimeSpan.FromMinutes(30), parent: expired[0].Hash)).Entry;
        var alive = (await Create(ttl: TimeSpan.FromMinutes(30))).Entry;
        var (_, root, _) = await _store.CreateAsync(new TokenCreateRequest { Policies = ["root"] }, default);

        Assert.Equal(0, await _store.SweepExpiredAsync(batch: 2, default));
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(5, await _store.SweepExpiredAsync(batch: 2, default));

        var keys = _physical.Snapshot().Keys.Where(k => k.StartsWith("sys/token/", StringComparison.Ordinal) && k != TokenStore.SaltPath).ToHashSet();
        Assert.Equal(
            new[] { alive, root }.SelectMany(e => new[] { "sys/token/id/" + e.Hash, "sys/token/accessor/" + _store.Hash(e.Accessor) }).ToHashSet(),
            keys);
        Assert.DoesNotContain("sys/token/id/" + child.Hash, keys);
        Assert.Equal(0, await _store.SweepExpiredAsync(batch: 2, default));
    }

    private Task<(string Token, TokenEntry Entry, List<string> Warnings)> Create(
        TimeSpan? ttl, TimeSpan explicitMax = default, string? parent = null, bool renewable = true, long numUses = 0) =>
        _store.CreateAsync(
            new TokenCreateRequest { Policies = ["default", "app"], Ttl = ttl, ExplicitMaxTtl = explicitMax, ParentHash = parent, Renewable = renewable, NumUses = numUses },
            default);
}
