using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests;

/// <summary>A KMS on loopback port 0 (real Kestrel) with a client, for integration tests.</summary>
public sealed class TestKms : IAsyncDisposable
{
    private readonly KmsServer _server;

    private TestKms(KmsServer server, InMemoryStorage? storage, FakeTimeProvider time)
    {
        _server = server;
        Storage = storage;
        Time = time;
        // Tests that enable TLS use the KMS's self-signed certificate; attestation, not the web PKI, is what they check.
        Client = new VaultHttp(new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true }) { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromSeconds(30) });
    }

    /// <summary>The server.</summary>
    public KmsServer Server => _server;

    /// <summary>The storage, when in memory (to look at what reaches the disk).</summary>
    public InMemoryStorage? Storage { get; }

    /// <summary>The server's clock.</summary>
    public FakeTimeProvider Time { get; }

    /// <summary>A client; its token is the root token after <see cref="InitAsync"/>.</summary>
    public VaultHttp Client { get; }

    /// <summary>Unseal keys from init (hex).</summary>
    public List<string> Keys { get; } = [];

    /// <summary>The root token from init.</summary>
    public string RootToken { get; private set; } = "";

    /// <summary>Starts a server over in-memory storage (or the given spec, or the given store).</summary>
    public static async Task<TestKms> StartAsync(Func<KmsServerOptions, KmsServerOptions>? configure = null, string? storageSpec = null, IPhysicalStorage? physical = null)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));
        var storage = storageSpec is null && physical is null ? new InMemoryStorage() : null;
        var options = new KmsServerOptions { Listen = "127.0.0.1:0", Storage = storageSpec ?? "inmem", TimeProvider = time, WarningWriter = TextWriter.Null };
        options = configure?.Invoke(options) ?? options;
        var server = new KmsServer(options, physical ?? storage);
        await server.StartAsync();
        return new TestKms(server, storage, time);
    }

    /// <summary>Starts, initialises and unseals a server; the client carries the root token.</summary>
    public static async Task<TestKms> StartUnsealedAsync(Func<KmsServerOptions, KmsServerOptions>? configure = null, int shares = 1, int threshold = 1, IPhysicalStorage? physical = null)
    {
        var kms = await StartAsync(configure, physical: physical);
        await kms.InitAsync(shares, threshold);
        await kms.UnsealAsync();
        return kms;
    }

    /// <summary>Runs sys/init (with auto-unseal, as Vault's clients do: the shares asked for as recovery keys).</summary>
    public async Task InitAsync(int shares, int threshold)
    {
        object body = _server.Core.Options.AutoUnseal is null
            ? new { secret_shares = shares, secret_threshold = threshold }
            : new { recovery_shares = shares, recovery_threshold = threshold };
        var init = (await Client.PutAsync("sys/init", body)).Expect(200);
        Keys.AddRange(init.Body!["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        RootToken = init.Body["root_token"]!.GetValue<string>();
        Client.Token = RootToken;
    }

    /// <summary>Waits (polling, 10 s at most) until exactly <paramref name="count"/> KV long-poll reads are parked.</summary>
    public async Task WaitForKvWaitersAsync(int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Server.KvWaiters != count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"expected {count} parked readers, have {Server.KvWaiters}");
            await Task.Delay(10);
        }
    }

    /// <summary>Submits threshold keys.</summary>
    public async Task UnsealAsync()
    {
        JsonObject? status = null;
        foreach (var key in Keys)
        {
            status = (await Client.PutAsync("sys/unseal", new { key })).Expect(200).Body;
            if (status!["sealed"]!.GetValue<bool>() == false)
            {
                return;
            }
        }

        throw new InvalidOperationException($"still sealed: {status}");
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _server.DisposeAsync();
    }
}
