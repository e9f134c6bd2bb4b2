using System.Collections.Concurrent;
using System.Net;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Tests;

/// <summary>An in-memory runtime: instances become ready when the test says (or at once), and "exit" on demand.</summary>
internal sealed class FakeLauncher(bool readyAtOnce = true) : IInstanceLauncher
{
    private int _attempts;

    public ConcurrentQueue<FakeInstance> Launched { get; } = new();

    public IEnumerable<FakeInstance> Alive => Launched.Where(i => !i.Exited.IsCompleted);

    /// <summary>Exceptions the next launches throw, one each, before any instance is made (a refused spawn).</summary>
    public ConcurrentQueue<Exception> Refusals { get; } = new();

    /// <summary>
    /// Where every instance's app listens, when the test runs a server there (see <see cref="HangUpServer"/>); by default
    /// a port nobody listens on, which the gateways take for an instance gone and ask for another.
    /// </summary>
    public IPEndPoint? AppEndpoint { get; init; }

    /// <summary>Launches asked for, refused ones included.</summary>
    public int Attempts => Volatile.Read(ref _attempts);

    public IInstanceProcess Launch(Revision revision, string instanceId)
    {
        Interlocked.Increment(ref _attempts);
        if (Refusals.TryDequeue(out var refusal))
        {
            throw refusal;
        }

        var instance = new FakeInstance(instanceId, Launched.Count + 1, AppEndpoint);
        Launched.Enqueue(instance);
        if (readyAtOnce)
        {
            instance.MarkReady();
        }

        return instance;
    }
}

internal sealed class FakeInstance(string id, int n, IPEndPoint? appEndpoint = null) : IInstanceProcess
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Id { get; } = id;

    public IPEndPoint? TlsEndpoint { get; } = new(IPAddress.Loopback, 40000 + n);

    public IPEndPoint AppEndpoint { get; } = appEndpoint ?? new(IPAddress.Loopback, 50000 + n);

    public Task Ready => _ready.Task;

    public Task<int> Exited => _exited.Task;

    public ColdStartPhases? ColdStart { get; } = new(10, 20, 5, 30);

    public LogRing Logs { get; } = new(10);

    public bool Stopped { get; private set; }

    /// <summary>Runs when the instance is signalled to stop, before it "exits": what the rest of the host shows then.</summary>
    public Action? OnStop { get; set; }

    public void MarkReady() => _ready.TrySetResult();

    public void Crash()
    {
        _ready.TrySetException(new InvalidOperationException("crashed"));
        _exited.TrySetResult(1);
    }

    public Task StopAsync(TimeSpan drain)
    {
        OnStop?.Invoke();
        Stopped = true;
        _ready.TrySetException(new InvalidOperationException("stopped"));
        _exited.TrySetResult(0);
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>An app that accepts each connection and closes it unanswered: a request proxied there fails after connecting (502).</summary>
internal sealed class HangUpServer : IAsyncDisposable
{
    private readonly System.Net.Sockets.TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Task _accepting;

    public HangUpServer()
    {
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndpoint;

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        await _accepting;
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                (await _listener.AcceptTcpClientAsync()).Dispose();
            }
        }
        catch (Exception e) when (e is System.Net.Sockets.SocketException or ObjectDisposedException)
        {
        }
    }
}
