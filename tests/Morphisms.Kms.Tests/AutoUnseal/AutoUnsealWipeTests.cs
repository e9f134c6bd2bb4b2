using Morphisms.Kms.AutoUnseal;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.AutoUnseal;

/// <summary>An auto-unseal that fails after unwrapping the root key (the store is damaged) zeroes it before it gives up.</summary>
public sealed class AutoUnsealWipeTests
{
    [Fact]
    public async Task A_failed_auto_unseal_zeroes_the_unwrapped_root_key()
    {
        var storage = new InMemoryStorage();
        var wrapper = new RecordingWrapper();
        await using var core = new KmsCore(storage, new KmsServerOptions { Storage = "inmem", AutoUnseal = wrapper, WarningWriter = TextWriter.Null });
        var init = await core.InitializeAsync(1, 1, unseal: false, CancellationToken.None);
        await core.SubmitUnsealKeyAsync(init.Keys[0].ToArray(), CancellationToken.None);
        await core.SealAsync();

        await storage.DeleteAsync(BarrierStorage.KeyringPath);
        await Assert.ThrowsAsync<BarrierException>(() => core.TryAutoUnsealAsync(CancellationToken.None));
        Assert.True(core.Sealed);
        var unwrapped = Assert.Single(wrapper.Unwrapped);
        Assert.Equal(32, unwrapped.Length);
        Assert.All(unwrapped, b => Assert.Equal(0, b));
    }

    /// <summary>Wraps by copying, and keeps every root key it hands out so the test can see whether it was zeroed.</summary>
    private sealed class RecordingWrapper : IRootKeyWrapper
    {
        public List<byte[]> Unwrapped { get; } = [];

        public string Type => "recording";

        public Task<byte[]> WrapAsync(ReadOnlyMemory<byte> rootKey, CancellationToken cancellationToken) => Task.FromResult(rootKey.ToArray());

        public Task<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrapped, CancellationToken cancellationToken)
        {
            var key = wrapped.ToArray();
            Unwrapped.Add(key);
            return Task.FromResult(key);
        }
    }
}
