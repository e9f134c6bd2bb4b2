using System.Net;

namespace Morphisms.Bench.Load;

/// <summary>
/// The one warm instance the gateway scenario measures, and the nginx in front of it. <see cref="EnsureAsync"/> checks
/// before and after every trial that it is still the same instance; when the runtime replaced it (seen once: the
/// instance was SIGKILLed from outside on the shared machine), it waits for the new one, verifies it, re-pins its
/// certificate and points a fresh nginx at it, so a trial never mixes two instances.
/// </summary>
internal sealed class GatewayWarmTarget(BenchEnvironment env, string revision, string serverName) : IAsyncDisposable
{
    private NginxStreamProxy? _nginx;

    public IPEndPoint Instance { get; private set; } = new(IPAddress.None, 0);

    public NginxStreamProxy Nginx => _nginx ?? throw new InvalidOperationException("not started");

    /// <summary>SHA-256 of the instance's certificate, which every path must present.</summary>
    public byte[] Pin { get; private set; } = [];

    /// <summary>Bumped whenever the instance changed.</summary>
    public int Generation { get; private set; }

    public IPEndPoint EndPoint(GatewayScenario.PathKind path, IPEndPoint gateway) => path switch
    {
        GatewayScenario.PathKind.Gateway => gateway,
        GatewayScenario.PathKind.Direct => Instance,
        _ => Nginx.EndPoint,
    };

    public async Task EnsureAsync(CancellationToken ct)
    {
        var current = await ReadyInstanceAsync(ct);
        if (current.Equals(Instance) && _nginx is not null)
        {
            return;
        }

        Instance = current;
        Generation++;

        // As `morph invoke` does: the attested certificate verified against the KMS pinned through attestation.
        using (var http = env.Client(Flavour.Confidential))
        using (var response = await http.GetAsync($"https://{serverName}/healthz", ct))
        {
            response.EnsureSuccessStatusCode();
        }

        if (_nginx is not null)
        {
            await _nginx.DisposeAsync();
        }

        _nginx = await NginxStreamProxy.StartAsync(serverName, Instance, ct);
        var gateway = env.Stack.Serving.GatewayEndPoint;
        Pin = await GatewayScenario.CertificateHashAsync(gateway, serverName, ct);
        foreach (var (path, endpoint) in new[] { ("direct", Instance), ("nginx", _nginx.EndPoint) })
        {
            if (!(await GatewayScenario.CertificateHashAsync(endpoint, serverName, ct)).AsSpan().SequenceEqual(Pin))
            {
                throw new InvalidOperationException($"{path} presents a different certificate than the gateway: not the same instance");
            }
        }
    }

    private async Task<IPEndPoint> ReadyInstanceAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        while (true)
        {
            if (env.Stack.Serving.Instances.Ready(revision) is [var endpoint])
            {
                return endpoint;
            }

            try
            {
                await Task.Delay(100, timeout.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"no single ready instance of {revision} after 120 s (see {env.LogPath})");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_nginx is not null)
        {
            await _nginx.DisposeAsync();
        }
    }
}
