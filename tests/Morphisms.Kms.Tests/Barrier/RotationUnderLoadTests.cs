using System.Collections.Concurrent;

namespace Morphisms.Kms.Tests.Barrier;

public class RotationUnderLoadTests
{
    [Fact]
    public async Task Rotations_under_concurrent_reads_and_writes_lose_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var written = new ConcurrentDictionary<string, string>();
        var failures = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();

        async Task Writer(int w)
        {
            for (var i = 0; !stop.IsCancellationRequested || i < 5; i++)
            {
                var path = $"load/w{w}/k{i}";
                var value = $"v-{w}-{i}";
                var put = await c.PutAsync("secret/data/" + path, new { data = new { value } });
                if (put.Status != 200)
                {
                    failures.Add($"put {path}: {put.Status} {put.Raw}");
                    return;
                }

                written[path] = value;
                var read = await c.GetAsync("secret/data/" + path);
                if (read.Status != 200 || read.Data["data"]!["value"]!.GetValue<string>() != value)
                {
                    failures.Add($"read {path}: {read.Status} {read.Raw}");
                }
            }
        }

        var writers = Enumerable.Range(0, 4).Select(Writer).ToList();

        // Pairs of rotations race each other as well as the writers.
        for (var r = 0; r < 5; r++)
        {
            var pair = await Task.WhenAll(c.PutAsync("sys/rotate"), c.PutAsync("sys/rotate"));
            Assert.All(pair, p => p.Expect(204));
        }

        await stop.CancelAsync();
        await Task.WhenAll(writers);
        Assert.Empty(failures);
        Assert.True(written.Count >= 20);

        var status = (await c.GetAsync("sys/key-status")).Expect(200).Data;
        Assert.Equal(11, status["term"]!.GetValue<int>());
        Assert.Equal(11, status["terms"]!.GetValue<int>());

        // New writes carry the newest term in their ciphertext header.
        (await c.PutAsync("secret/data/after", new { data = new { value = "x" } })).Expect(200);
        var newest = kms.Storage!.Snapshot().Where(e => e.Key.Contains("after", StringComparison.Ordinal)).Select(e => e.Value).ToList();
        Assert.NotEmpty(newest);
        Assert.All(newest, v => Assert.Equal(11u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(v)));

        // Everything written under any term reads back after the keyring is reloaded from storage.
        (await c.PutAsync("sys/seal")).Expect(204);
        await kms.UnsealAsync();
        foreach (var (path, value) in written)
        {
            Assert.Equal(value, (await c.GetAsync("secret/data/" + path)).Expect(200).Data["data"]!["value"]!.GetValue<string>());
        }
    }
}
