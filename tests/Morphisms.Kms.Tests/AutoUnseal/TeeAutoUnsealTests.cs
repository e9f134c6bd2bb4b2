using Morphisms.Kms.AutoUnseal;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.AutoUnseal;

public sealed class TeeAutoUnsealTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-tee-seal-").FullName;

    [Fact]
    public async Task The_kms_auto_unseals_from_the_tee_sealing_key_and_another_measurement_cannot()
    {
        var storage = "sqlite:" + Path.Combine(_dir, "kms.db");
        var measurementA = Enumerable.Repeat((byte)0xA1, 48).ToArray();
        var measurementB = Enumerable.Repeat((byte)0xB2, 48).ToArray();
        KmsServerOptions With(byte[] m, KmsServerOptions o) =>
            o with { AutoUnseal = new TeeSealingKeyWrapper(SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, m)) };

        List<string> keys;
        string root;
        await using (var kms = await TestKms.StartAsync(o => With(measurementA, o), storage))
        {
            await kms.InitAsync(3, 2);
            keys = kms.Keys;
            root = kms.RootToken;
            var status = (await kms.Client.GetAsync("sys/seal-status")).Expect(200).Body!;
            Assert.False(status["sealed"]!.GetValue<bool>());
            Assert.Equal("tee-simulated", status["type"]!.GetValue<string>());
            Assert.True(status["recovery_seal"]!.GetValue<bool>());
            (await kms.Client.PutAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);
        }

        // Restart: unsealed without anyone submitting a share.
        await using (var kms = await TestKms.StartAsync(o => With(measurementA, o), storage))
        {
            Assert.False(kms.Server.Sealed);
            Assert.Equal("1", (await kms.Client.GetAsync("secret/data/app", root)).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        }

        // Another measurement derives another key: sealed, with a warning saying why.
        var warnings = new StringWriter();
        await using (var kms = await TestKms.StartAsync(o => With(measurementB, o) with { WarningWriter = warnings }, storage))
        {
            Assert.True(kms.Server.Sealed);
            Assert.Contains("measurement or platform differs", warnings.ToString(), StringComparison.Ordinal);

            // The shares still work as recovery keys; unsealing with them approves the new measurement.
            kms.Keys.AddRange(keys);
            await kms.UnsealAsync();
        }

        await using (var kms = await TestKms.StartAsync(o => With(measurementB, o), storage))
        {
            Assert.False(kms.Server.Sealed);
        }

        await using (var kms = await TestKms.StartAsync(o => With(measurementA, o), storage))
        {
            Assert.True(kms.Server.Sealed);
        }
    }

    [Fact]
    public async Task An_auto_unseal_failing_after_init_committed_still_answers_the_shares_and_root_token()
    {
        // The wrapped root key cannot be stored (a disk error): init has committed by then, so the reply is the only
        // copy of the shares and the root token and must reach the operator, saying the KMS stayed sealed and why.
        var storage = new FailingAutoUnsealStorage();
        var warnings = new StringWriter();
        await using var kms = await TestKms.StartAsync(
            o => o with { AutoUnseal = new TeeSealingKeyWrapper(SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, [0xA1])), WarningWriter = warnings },
            physical: storage);

        var init = (await kms.Client.PutAsync("sys/init", new { recovery_shares = 3, recovery_threshold = 2 })).Expect(200).Body!;
        var keys = init["keys"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();
        Assert.Equal(3, keys.Count);
        Assert.Equal(3, init["keys_base64"]!.AsArray().Count);
        var root = init["root_token"]!.GetValue<string>();
        Assert.True(init["sealed"]!.GetValue<bool>());
        var warning = Assert.Single(init["warnings"]!.AsArray())!.GetValue<string>();
        Assert.Contains("sealed", warning, StringComparison.Ordinal);
        Assert.Contains("disk on fire", warning, StringComparison.Ordinal);
        Assert.DoesNotContain(root, warning, StringComparison.Ordinal);
        Assert.All(keys, k => Assert.DoesNotContain(k, warning, StringComparison.Ordinal));
        Assert.Contains("disk on fire", warnings.ToString(), StringComparison.Ordinal);
        Assert.True(kms.Server.Sealed);

        // Initialised for good: a second init is refused, and the shares it returned unseal it (wrapping the root key now).
        (await kms.Client.PutAsync("sys/init", new { recovery_shares = 1, recovery_threshold = 1 })).Expect(400);
        storage.Fail = false;
        kms.Keys.AddRange(keys);
        await kms.UnsealAsync();
        Assert.NotNull(await storage.GetAsync(AutoUnsealPaths.WrappedRootKey));
        (await kms.Client.PutAsync("secret/data/app", new { data = new { v = "1" } }, root)).Expect(200);
    }

    [Fact]
    public async Task A_damaged_store_leaves_the_kms_listening_and_sealed_with_a_warning_instead_of_failing_to_start()
    {
        var storage = new InMemoryStorage();
        KmsServerOptions With(KmsServerOptions o) => o with { AutoUnseal = new TeeSealingKeyWrapper(SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, [0xA1])) };
        await using (var kms = await TestKms.StartAsync(With, physical: storage))
        {
            await kms.InitAsync(1, 1);
            Assert.False(kms.Server.Sealed);
        }

        // The root key still unwraps, but the keyring it should open is gone.
        await storage.DeleteAsync(BarrierStorage.KeyringPath);
        var warnings = new StringWriter();
        await using var damaged = await TestKms.StartAsync(o => With(o) with { WarningWriter = warnings }, physical: storage);
        Assert.True(damaged.Server.Sealed);
        Assert.Contains("WARNING! the KMS is still sealed", warnings.ToString(), StringComparison.Ordinal);
        Assert.Contains("the keyring is missing from storage", warnings.ToString(), StringComparison.Ordinal);
        var status = (await damaged.Client.GetAsync("sys/seal-status")).Expect(200).Body!;
        Assert.True(status["initialized"]!.GetValue<bool>());
        Assert.True(status["sealed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task A_bogus_unseal_share_sent_while_init_commits_cannot_keep_the_auto_unsealed_kms_sealed()
    {
        // sys/unseal is public: a share sent the moment init commits must not mix into the auto-unseal that follows.
        var storage = new InitHookStorage();
        await using var kms = await TestKms.StartAsync(
            o => o with { AutoUnseal = new TeeSealingKeyWrapper(SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, [0xA1])) },
            physical: storage);
        Task? bogus = null;

        // Called while init still holds the transition lock: the bogus share queues for it ahead of anything else.
        storage.AfterInitCommit = () => bogus = kms.Server.Core.SubmitUnsealKeyAsync([.. Enumerable.Repeat((byte)0x5A, 32), 7], CancellationToken.None);
        var init = (await kms.Client.PutAsync("sys/init", new { recovery_shares = 3, recovery_threshold = 2 })).Expect(200).Body!;
        Assert.Null(init["sealed"]);
        Assert.Null(init["warnings"]);
        Assert.False(kms.Server.Sealed);
        Assert.NotNull(bogus);
        await bogus.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(kms.Server.Sealed);
        Assert.Equal(0, (await kms.Client.GetAsync("sys/seal-status")).Body!["progress"]!.GetValue<int>());
        Assert.NotNull(await storage.GetAsync(AutoUnsealPaths.WrappedRootKey));
    }

    [Fact]
    public void The_simulated_provider_refuses_a_bad_secret_file()
    {
        Assert.Throws<ArgumentException>(() => SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, []));
        File.WriteAllBytes(Path.Combine(_dir, SimulatedTeeSealingKeyProvider.SecretFileName), [1, 2, 3]);
        Assert.Throws<InvalidDataException>(() => SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, [1]));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>In-memory storage that calls <see cref="AfterInitCommit"/> once init's transaction (the one writing the seal config) committed.</summary>
    private sealed class InitHookStorage : ForwardingStorage
    {
        public Action? AfterInitCommit { get; set; }

        public override async Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
        {
            await Inner.TransactAsync(operations, cancellationToken);
            if (operations.Any(o => o.Key == Morphisms.Kms.Seal.SealConfig.StoragePath))
            {
                AfterInitCommit?.Invoke();
            }
        }
    }

    /// <summary>In-memory storage whose put of the wrapped root key fails while <see cref="Fail"/> is set.</summary>
    private sealed class FailingAutoUnsealStorage : ForwardingStorage
    {
        public volatile bool Fail = true;

        public override Task PutAsync(string key, ReadOnlyMemory<byte> value, CancellationToken cancellationToken = default) =>
            Fail && key == AutoUnsealPaths.WrappedRootKey ? throw new IOException("disk on fire") : Inner.PutAsync(key, value, cancellationToken);
    }
}
