using System.Security.Cryptography;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Tests.Tokens;

/// <summary>
/// Orphans with generated ids (every attest-login) are created without the store-wide lock, so concurrent logins
/// share SQLite commits; tokens with a parent or a custom id still take it.
/// </summary>
public sealed class ConcurrentTokenCreationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-tokens-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Concurrent_orphans_are_all_usable_findable_by_accessor_and_durable()
    {
        var path = Path.Combine(_dir, "kms.db");
        var keyring = Keyring.Create(_time.GetUtcNow());
        var salt = RandomNumberGenerator.GetBytes(32);
        List<(string Token, TokenEntry Entry)> created;
        await using (var physical = SqliteStorage.Open(path))
        {
            var store = Store(physical, keyring, salt);
            created = [.. await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => Task.Run(async () =>
            {
                var (token, entry, _) = await store.CreateAsync(new TokenCreateRequest { Policies = ["fn"], Ttl = TimeSpan.FromMinutes(5) }, default);
                return (token, entry);
            })))];
            Assert.Equal(50, created.Select(c => c.Token).Distinct().Count());
        }

        await using var reopened = SqliteStorage.Open(path);
        var again = Store(reopened, keyring, salt);
        foreach (var (token, entry) in created)
        {
            Assert.Equal(entry.Hash, (await again.UseAsync(token, default))?.Hash);
            Assert.Equal(entry.Hash, (await again.LookupByAccessorAsync(entry.Accessor, default))?.Hash);
        }
    }

    [Fact]
    public async Task A_custom_id_still_cannot_be_created_twice_even_concurrently()
    {
        await using var physical = new InMemoryStorage();
        var store = Store(physical, Keyring.Create(_time.GetUtcNow()), RandomNumberGenerator.GetBytes(32));
        var attempts = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            try
            {
                await store.CreateAsync(new TokenCreateRequest { Policies = ["fn"], CustomId = "hvs.same-custom-id" }, default);
                return true;
            }
            catch (KmsException e) when (e.StatusCode == 400)
            {
                return false;
            }
        })));

        Assert.Equal(1, attempts.Count(ok => ok));
    }

    private TokenStore Store(IPhysicalStorage physical, Keyring keyring, byte[] salt) =>
        new(new BarrierStorage(physical, keyring), salt, _time, new TokenStoreOptions(TimeSpan.FromHours(1), TimeSpan.FromHours(4)));
}
