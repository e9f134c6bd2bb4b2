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

    /// <summary>Launches asked for, refused ones included.</summary>
    public int Attempts => Volatile.Read(ref _attempts);

    public IInstanceProcess Launch(Revision revision, string instanceId)
    {
        Interlocked.Increment(ref _attempts);
        if (Refusals.TryDequeue(out var refusal))
        {
            throw refusal;
        }

        var instance = new FakeInstance(instanceId, Launched.Count + 1);
        Launched.Enqueue(instance);
        if (readyAtOnce)
        {
            instance.MarkReady();
        }

        return instance;
    }
}

internal sealed class FakeInstance(string id, int n) : IInstanceProcess
{
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string Id { get; } = id;

    public IPEndPoint? TlsEndpoint { get; } = new(IPAddress.Loopback, 40000 + n);

    public IPEndPoint AppEndpoint { get; } = new(IPAddress.Loopback, 50000 + n);

    public Task Ready => _ready.Task;

    public Task<int> Exited => _exited.Task;

    public ColdStartPhases? ColdStart { get; } = new(10, 20, 5, 30);

    public LogRing Logs { get; } = new(10);

    public bool Stopped { get; private set; }

    public void MarkReady() => _ready.TrySetResult();

    public void Crash()
    {
        _ready.TrySetException(new InvalidOperationException("crashed"));
        _exited.TrySetResult(1);
    }

    public Task StopAsync(TimeSpan drain)
    {
        Stopped = true;
        _ready.TrySetException(new InvalidOperationException("stopped"));
        _exited.TrySetResult(0);
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
