using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

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

    [Fact]
    public async Task A_set_with_a_write_through_a_closed_mount_view_commits_nothing()
    {
        // Attest-login gathers a certificate record through the pki mount's view and commits later: an unmount that
        // began meanwhile has listed the mount's keys, so the record would be left under a prefix nothing references.
        var store = new RecordingSecureStorage();
        var mount = new PrefixedStorage(store, "logical/abc/");
        var writes = new WriteSet();
        writes.Add(store, "sys/token/id/h", [1]);
        writes.Add(mount, "certs/01", [2]);
        await mount.CloseAsync("the mount at 'pki/' is being disabled", default);

        var e = await Assert.ThrowsAsync<KmsException>(() => writes.CommitAsync(default));
        Assert.Equal(503, e.StatusCode);
        Assert.Contains("'pki/' is being disabled", e.Message, StringComparison.Ordinal);
        Assert.Empty(store.Transactions);
    }

    [Fact]
    public async Task Closing_a_view_waits_for_a_commit_under_way_through_it_unless_cancelled()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var store = new RecordingSecureStorage { Gate = gate.Task };
        var mount = new PrefixedStorage(store, "logical/abc/");
        var writes = new WriteSet();
        writes.Add(mount, "certs/01", [2]);
        var commit = writes.CommitAsync(default);

        // Cancelled while the commit runs: the unmount gives up and the mount serves again.
        using var cancelled = new CancellationTokenSource();
        var giveUp = mount.CloseAsync("closing", cancelled.Token);
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => giveUp);
        mount.Enter().Dispose();

        var close = mount.CloseAsync("closing", default);
        await Task.Delay(50);
        Assert.False(close.IsCompleted);
        gate.SetResult();
        await commit;
        await close.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Single(store.Transactions);
        Assert.Equal(503, Assert.Throws<KmsException>(() => mount.Enter()).StatusCode);
    }

    private sealed class RecordingSecureStorage : ISecureStorage
    {
        public List<List<(string Key, byte[]? Value)>> Transactions { get; } = [];

        public Task? Gate { get; init; }

        public Task<byte[]?> GetAsync(string key, CancellationToken ct = default) => Task.FromResult<byte[]?>(null);

        public Task PutAsync(string key, byte[] value, CancellationToken ct = default) => TransactAsync([(key, value)], ct);

        public Task DeleteAsync(string key, CancellationToken ct = default) => TransactAsync([(key, null)], ct);

        public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default) => Task.FromResult<IReadOnlyList<string>>([]);

        public async Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default)
        {
            if (Gate is { } gate)
            {
                await gate;
            }

            Transactions.Add([.. operations]);
        }
    }
}
