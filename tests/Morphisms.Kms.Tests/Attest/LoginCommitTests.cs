using Morphisms.Kms.HighAvailability;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>
/// An accepted login's token, certificate and retirement index entries reach storage in one transaction: all of them,
/// or (when the commit fails) none, so no credential exists that retiring its revision would miss.
/// </summary>
public sealed class LoginCommitTests
{
    private const string TokenKeys = "sys/token/id/";
    private const string IndexKeys = "morphisms/issued/signer/1/";

    [Fact]
    public async Task A_login_commits_its_token_certificate_and_index_entries_in_one_transaction()
    {
        var storage = new RecordingStorage();
        await using var kms = await StartAsync(storage);
        using var instance = new FunctionInstance();

        storage.Transactions.Clear();
        var login = (await LoginAsync(kms, instance)).Expect(200);
        var serial = Serial(login.Data["certificate"]!.GetValue<string>());

        var withToken = Assert.Single(storage.Transactions, t => t.Any(k => k.StartsWith(TokenKeys, StringComparison.Ordinal)));
        Assert.Contains(withToken, k => k.StartsWith("sys/token/accessor/", StringComparison.Ordinal));
        Assert.Contains(withToken, k => k.Contains("/certs/", StringComparison.Ordinal) && !k.StartsWith(IndexKeys, StringComparison.Ordinal));
        Assert.Contains(withToken, k => k.StartsWith(IndexKeys + "tokens/", StringComparison.Ordinal));
        Assert.Contains(withToken, k => k.StartsWith(IndexKeys + "certs/", StringComparison.Ordinal) && k.EndsWith("-" + serial, StringComparison.Ordinal));

        // Nothing of the login was written apart from that transaction (the issuer's expiry moves at most hourly).
        Assert.DoesNotContain(storage.Transactions, t => t != withToken && t.Any(k => k.StartsWith(IndexKeys, StringComparison.Ordinal) || k.StartsWith(TokenKeys, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_login_whose_commit_fails_leaves_no_token_certificate_or_index_entry()
    {
        var storage = new RecordingStorage();
        await using var kms = await StartAsync(storage);
        using var instance = new FunctionInstance();
        (await LoginAsync(kms, instance)).Expect(200);
        var before = await storage.Inner.ReadAllAsync();

        // The node is deposed as the login commits (an HA failover): the client is told to retry, and nothing is left.
        storage.FailNextWith(TokenKeys, new StandbyWriteException());
        var failed = await LoginAsync(kms, instance);
        Assert.Equal(503, failed.Status);
        Assert.Equal(before.Select(e => e.Key), (await storage.Inner.ReadAllAsync()).Select(e => e.Key));

        // The next login goes through as usual.
        (await LoginAsync(kms, instance)).Expect(200);
        Assert.Equal(2, (await storage.Inner.ListAsync(IndexKeys + "tokens/")).Count);
    }

    [Fact]
    public async Task A_later_login_drops_index_entries_past_their_max_ttl_in_its_own_transaction()
    {
        var storage = new RecordingStorage();
        await using var kms = await StartAsync(storage);
        using var instance = new FunctionInstance();
        (await LoginAsync(kms, instance)).Expect(200);
        var first = Assert.Single(await storage.Inner.ListAsync(IndexKeys + "tokens/"));

        // Past the first token's max TTL (renewals cannot keep it alive), and past the once-a-minute prune interval.
        var maxTtl = (await kms.Client.GetAsync("morphisms/functions/signer")).Expect(200).Data["token_max_ttl"]!.GetValue<long>();
        kms.Time.Advance(TimeSpan.FromSeconds(maxTtl) + TimeSpan.FromMinutes(2));
        storage.Transactions.Clear();
        (await LoginAsync(kms, instance)).Expect(200);

        var second = Assert.Single(await storage.Inner.ListAsync(IndexKeys + "tokens/"));
        Assert.NotEqual(first, second);
        var withToken = Assert.Single(storage.Transactions, t => t.Any(k => k.StartsWith(TokenKeys, StringComparison.Ordinal)));
        Assert.Contains(IndexKeys + "tokens/" + first, withToken);
    }

    /// <summary>A KMS over <paramref name="storage"/> with the signer registered.</summary>
    private static async Task<TestKms> StartAsync(RecordingStorage storage)
    {
        var kms = await TestKms.StartUnsealedAsync(SimulatedTees.TrustingSimulated, physical: storage);
        await AttestFlow.RegisterSignerAsync(kms.Client);
        return kms;
    }

    private static async Task<VaultResult> LoginAsync(TestKms kms, FunctionInstance instance)
    {
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        return await AttestFlow.LoginAsync(kms.Client, "snp", instance.SnpReport(nonce, FunctionInstance.SnpMeasurement), nonce, instance.CsrPem);
    }

    private static string Serial(string pem)
    {
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(pem);
        return certificate.SerialNumber.ToLowerInvariant();
    }

    /// <summary>In-memory storage that records the keys of every transaction and can fail one on demand.</summary>
    private sealed class RecordingStorage : ForwardingStorage
    {
        private readonly Lock _lock = new();
        private (string KeyPrefix, Exception Failure)? _failNext;

        public List<List<string>> Transactions { get; } = [];

        public void FailNextWith(string keyPrefix, Exception failure)
        {
            lock (_lock)
            {
                _failNext = (keyPrefix, failure);
            }
        }

        public override Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) =>
            TransactAsync([StorageOperation.Put(key, value)], cancellationToken);

        public override Task DeleteAsync(string key, CancellationToken cancellationToken = default) =>
            TransactAsync([StorageOperation.Delete(key)], cancellationToken);

        public override Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default) => Inner.ReadAllAsync(cancellationToken);

        public override Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
        {
            lock (_lock)
            {
                var keys = operations.Select(o => o.Key).ToList();
                if (_failNext is { } fail && keys.Any(k => k.StartsWith(fail.KeyPrefix, StringComparison.Ordinal)))
                {
                    _failNext = null;
                    return Task.FromException(fail.Failure);
                }

                Transactions.Add(keys);
            }

            return Inner.TransactAsync(operations, cancellationToken);
        }
    }
}
