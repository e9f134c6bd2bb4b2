using Morphisms.Kms.Barrier;

namespace Morphisms.Kms.Tests.Barrier;

/// <summary>A write set commits writes made through several views as one transaction on the store beneath them.</summary>
public sealed class WriteSetTests
{
    [Fact]
    public async Task Writes_through_prefixed_views_become_one_transaction_under_their_full_keys()
    {
        var store = new RecordingSecureStorage();
        var mount = new PrefixedStorage(new PrefixedStorage(store, "logical/abc/"), "inner/");
        var writes = new WriteSet();
        writes.Add(store, "sys/token/id/h", [1]);
        writes.Add(mount, "certs/01", [2]);
        writes.Add(store, "morphisms/issued/f/1/tokens/old", null);
        Assert.Equal(3, writes.Count);
        Assert.Empty(store.Transactions);

        await writes.CommitAsync(default);

        var transaction = Assert.Single(store.Transactions);
        Assert.Equal(["sys/token/id/h", "logical/abc/inner/certs/01", "morphisms/issued/f/1/tokens/old"], transaction.Select(op => op.Key));
        Assert.Null(transaction[2].Value);
    }

    [Fact]
    public async Task An_empty_set_commits_nothing_and_a_set_commits_once()
    {
        var store = new RecordingSecureStorage();
        await new WriteSet().CommitAsync(default);
        Assert.Empty(store.Transactions);

        var writes = new WriteSet();
        writes.Add(store, "a", [1]);
        await writes.CommitAsync(default);
        Assert.Throws<InvalidOperationException>(() => writes.Add(store, "b", [2]));
        await Assert.ThrowsAsync<InvalidOperationException>(() => writes.CommitAsync(default));
        Assert.Single(store.Transactions);
    }

    [Fact]
    public void A_set_refuses_to_span_two_stores()
    {
        var writes = new WriteSet();
        writes.Add(new RecordingSecureStorage(), "a", [1]);
        var e = Assert.Throws<InvalidOperationException>(() => writes.Add(new PrefixedStorage(new RecordingSecureStorage(), "p/"), "b", [2]));
        Assert.Contains("two stores", e.Message, StringComparison.Ordinal);
    }

    private sealed class RecordingSecureStorage : ISecureStorage
    {
        public List<List<(string Key, byte[]? Value)>> Transactions { get; } = [];

        public Task<byte[]?> GetAsync(string key, CancellationToken ct = default) => Task.FromResult<byte[]?>(null);

        public Task PutAsync(string key, byte[] value, CancellationToken ct = default) => TransactAsync([(key, value)], ct);

        public Task DeleteAsync(string key, CancellationToken ct = default) => TransactAsync([(key, null)], ct);

        public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default) => Task.FromResult<IReadOnlyList<string>>([]);

        public Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default)
        {
            Transactions.Add([.. operations]);
            return Task.CompletedTask;
        }
    }
}
