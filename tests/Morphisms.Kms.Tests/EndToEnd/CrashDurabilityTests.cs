using System.Collections.Concurrent;

namespace Morphisms.Kms.Tests.EndToEnd;

/// <summary>Every write the KMS acknowledged survives SIGKILL of the process (SQLite WAL, synchronous=FULL).</summary>
public sealed class CrashDurabilityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-crash-").FullName;

    [Fact]
    public async Task Acknowledged_writes_and_tokens_survive_kill_minus_nine()
    {
        var storage = "sqlite:" + Path.Combine(_dir, "kms.db");
        var audit = Path.Combine(_dir, "audit.log");
        List<string> keys;
        string root;
        var acknowledged = new ConcurrentBag<(string Path, int Value)>();
        var tokens = new ConcurrentBag<string>();

        using (var first = await KmsProcess.StartAsync("--listen", "127.0.0.1:0", "--storage", storage, "--audit", audit))
        {
            using var c = new VaultHttp(new HttpClient { BaseAddress = first.BaseAddress, Timeout = TimeSpan.FromSeconds(10) });
            var init = (await c.PutAsync("sys/init", new { secret_shares = 3, secret_threshold = 2 })).Expect(200).Body!;
            keys = [.. init["keys"]!.AsArray().Select(k => k!.GetValue<string>())];
            root = init["root_token"]!.GetValue<string>();
            c.Token = root;
            (await c.PutAsync("sys/unseal", new { key = keys[0] })).Expect(200);
            (await c.PutAsync("sys/unseal", new { key = keys[2] })).Expect(200);

            using var stop = new CancellationTokenSource();
            var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    try
                    {
                        if (w == 3)
                        {
                            var t = await c.PostAsync("auth/token/create", new { ttl = "1h" });
                            if (t.Status == 200)
                            {
                                tokens.Add(t.Auth["client_token"]!.GetValue<string>());
                            }

                            continue;
                        }

                        var path = $"secret/data/w{w}/k{i}";
                        var r = await c.PostAsync(path, new { data = new { v = i } });
                        if (r.Status == 200)
                        {
                            acknowledged.Add((path, i));
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
                    {
                        return;
                    }
                }
            })).ToList();

            // Kill while the writers are mid-flight, after enough writes to be meaningful.
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (acknowledged.Count < 120 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            first.Kill();
            await stop.CancelAsync();
            await Task.WhenAll(writers);
        }

        Assert.True(acknowledged.Count >= 120, $"only {acknowledged.Count} writes were acknowledged before the deadline");

        using var second = await KmsProcess.StartAsync("--listen", "127.0.0.1:0", "--storage", storage, "--audit", audit);
        using var after = new VaultHttp(new HttpClient { BaseAddress = second.BaseAddress }) { Token = root };
        Assert.True((await after.GetAsync("sys/seal-status")).Expect(200).Body!["sealed"]!.GetValue<bool>());
        (await after.PutAsync("sys/unseal", new { key = keys[1] })).Expect(200);
        (await after.PutAsync("sys/unseal", new { key = keys[2] })).Expect(200);

        foreach (var (path, value) in acknowledged)
        {
            var read = await after.GetAsync(path);
            Assert.True(read.Status == 200, $"acknowledged write {path} is missing after the crash: {read.Status}");
            Assert.Equal(value, read.Data["data"]!["v"]!.GetValue<int>());
        }

        foreach (var token in tokens)
        {
            (await after.GetAsync("auth/token/lookup-self", token)).Expect(200);
        }

        // The audit chain survived the crash (a torn last line, if any, was cut and noted).
        var verified = (await after.PostAsync("sys/audit-verify")).Expect(200).Data;
        Assert.True(verified["valid"]!.GetValue<bool>(), verified.ToJsonString());
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
