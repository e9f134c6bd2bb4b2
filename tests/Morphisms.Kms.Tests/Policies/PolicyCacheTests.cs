using System.Collections.Concurrent;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Policies;

namespace Morphisms.Kms.Tests.Policies;

/// <summary>
/// A read that misses the policy cache and a write that replaces or deletes the policy meanwhile: the cache must end
/// with what storage holds, or the KMS would enforce the old (perhaps broader) policy until it is next sealed.
/// </summary>
public class PolicyCacheTests
{
    private const string Old = "path \"secret/*\" { capabilities = [\"read\", \"update\"] }";
    private const string New = "path \"secret/public\" { capabilities = [\"read\"] }";

    [Fact]
    public async Task A_read_that_began_before_a_write_does_not_put_the_old_policy_back_in_the_cache()
    {
        var storage = new PausingStorage();
        await new PolicyStore(storage).PutAsync("app", Old, default);
        var store = new PolicyStore(storage); // a fresh cache, as after an unseal

        var slowRead = storage.PauseNextGet("sys/policy/app");
        var reading = store.GetAsync("app", default);
        var oldBytes = await slowRead.Reached;          // the read has the old bytes and waits before parsing
        await store.PutAsync("app", New, default);
        slowRead.Release(oldBytes);
        Assert.Equal(Old, (await reading)!.Raw);         // it answers what it read ...

        Assert.Equal(New, (await store.GetAsync("app", default))!.Raw); // ... but does not cache it over the write
    }

    [Fact]
    public async Task A_read_that_began_before_a_delete_does_not_bring_the_policy_back()
    {
        var storage = new PausingStorage();
        var store = new PolicyStore(storage);
        await store.PutAsync("app", Old, default);
        store = new PolicyStore(storage); // a fresh cache, as after an unseal

        var slowRead = storage.PauseNextGet("sys/policy/app");
        var reading = store.GetAsync("app", default);
        var oldBytes = await slowRead.Reached;
        await store.DeleteAsync("app", default);
        slowRead.Release(oldBytes);
        await reading;

        Assert.Null(await store.GetAsync("app", default));
    }

    /// <summary>In-memory secure storage whose next read of one key can be held after it read its value.</summary>
    private sealed class PausingStorage : ISecureStorage
    {
        private readonly ConcurrentDictionary<string, byte[]> _values = new(StringComparer.Ordinal);
        private Pause? _pause;

        public Pause PauseNextGet(string key) => _pause = new Pause(key);

        public async Task<byte[]?> GetAsync(string key, CancellationToken ct = default)
        {
            _values.TryGetValue(key, out var value);
            if (_pause is { } pause && pause.Key == key && value is not null)
            {
                _pause = null;
                pause.Reach(value);
                return await pause.Released.ConfigureAwait(false);
            }

            return value;
        }

        public Task PutAsync(string key, byte[] value, CancellationToken ct = default)
        {
            _values[key] = value;
            return Task.CompletedTask;
        }

        public Task DeleteAsync(string key, CancellationToken ct = default)
        {
            _values.TryRemove(key, out _);
            return Task.CompletedTask;
        }

        public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default) =>
            Task.FromResult<IReadOnlyList<string>>([.. _values.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Select(k => k[prefix.Length..])]);

        public Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default)
        {
            foreach (var (key, value) in operations)
            {
                if (value is null)
                {
                    _values.TryRemove(key, out _);
                }
                else
                {
                    _values[key] = value;
                }
            }

            return Task.CompletedTask;
        }
    }

    private sealed class Pause(string key)
    {
        private readonly TaskCompletionSource<byte[]> _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<byte[]?> _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Key { get; } = key;

        public Task<byte[]> Reached => _reached.Task;

        public Task<byte[]?> Released => _released.Task;

        public void Reach(byte[] value) => _reached.TrySetResult(value);

        public void Release(byte[] value) => _released.TrySetResult(value);
    }
}
