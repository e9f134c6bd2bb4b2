using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Serving.Activation;
using Morphisms.Serving.Gateway;
using Morphisms.Serving.Routing;
using Morphisms.Serving.Tests.Gateway;

namespace Morphisms.Serving.Tests.Activation;

public class ActivatorTests
{
    private sealed class RecordingTrigger(Action<string>? onPoke = null) : IScaleFromZeroTrigger
    {
        public ConcurrentQueue<(string Revision, int Queued)> Pokes { get; } = new();

        public void Poke(string revision, int queued)
        {
            Pokes.Enqueue((revision, queued));
            onPoke?.Invoke(revision);
        }
    }

    private static RouteTable Routes()
    {
        var routes = new RouteTable();
        routes.Set(FunctionRoute.Create("hello", "fn.morphisms.local", [new("hello-00001", 100)]));
        return routes;
    }

    [Fact]
    public async Task A_request_for_a_scaled_to_zero_revision_is_held_until_an_instance_is_ready()
    {
        var instances = new RevisionInstances();
        var trigger = new RecordingTrigger();
        var resolver = new ActivatingBackendResolver(Routes(), instances, trigger, new ActivatorOptions());
        var pending = resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None).AsTask();

        await Eventually.True(() => instances.Queued("hello-00001") == 1, "request queued");
        Assert.False(pending.IsCompleted);
        Assert.Equal(("hello-00001", 1), Assert.Single(trigger.Pokes));

        var endpoint = new IPEndPoint(IPAddress.Loopback, 12345);
        instances.SetReady("hello-00001", [endpoint]);
        var target = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new BackendTarget("hello-00001", endpoint, Held: true), target);
        Assert.Equal(0, instances.Queued("hello-00001"));
    }

    [Fact]
    public async Task A_full_queue_refuses_at_once_and_a_wait_times_out()
    {
        var instances = new RevisionInstances();
        var time = new FakeTimeProvider();
        var options = new ActivatorOptions { MaxQueuedPerRevision = 1, QueueTimeout = TimeSpan.FromSeconds(60) };
        var resolver = new ActivatingBackendResolver(Routes(), instances, new RecordingTrigger(), options, time);
        var first = resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None).AsTask();
        await Eventually.True(() => instances.Queued("hello-00001") == 1, "request queued");

        var full = await Assert.ThrowsAsync<ActivatorOverloadedException>(() => resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None).AsTask());
        Assert.Contains("already wait", full.Message);
        Assert.Equal(TimeSpan.FromSeconds(1), full.RetryAfter);

        // The wait runs on the activator's clock: not a moment before the timeout, then refused.
        time.Advance(TimeSpan.FromSeconds(59.9));
        Assert.False(first.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.1));
        var timedOut = await Assert.ThrowsAsync<ActivatorOverloadedException>(() => first.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("within 60s", timedOut.Message);
        Assert.Equal(0, instances.Queued("hello-00001")); // the abandoned wait left the queue: memory stays bounded
    }

    [Fact]
    public async Task Ready_instances_are_picked_round_robin_without_waiting()
    {
        var instances = new RevisionInstances();
        var a = new IPEndPoint(IPAddress.Loopback, 1);
        var b = new IPEndPoint(IPAddress.Loopback, 2);
        instances.SetReady("hello-00001", [a, b]);
        var trigger = new RecordingTrigger();
        var resolver = new ActivatingBackendResolver(Routes(), instances, trigger, new ActivatorOptions());
        var picks = new List<IPEndPoint>();
        for (var i = 0; i < 4; i++)
        {
            picks.Add((await resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None))!.Endpoint);
        }

        Assert.Equal([a, b, a, b], picks);
        Assert.Empty(trigger.Pokes);
        Assert.Null(await resolver.ResolveAsync("unknown.fn.morphisms.local", CancellationToken.None));
    }

    [Fact]
    public async Task Through_the_gateway_a_tls_client_waits_out_a_scale_from_zero()
    {
        using var certificate = TlsTestPeers.SelfSigned("hello.fn.morphisms.local");
        await using var backend = TlsTestPeers.Backend(certificate, "cold-started instance");
        var instances = new RevisionInstances();
        // The "autoscaler" answers a poke by bringing an instance up a little later.
        var trigger = new RecordingTrigger(revision => _ = Task.Delay(200).ContinueWith(_ => instances.SetReady(revision, [backend.Endpoint]), TaskScheduler.Default));
        var resolver = new ActivatingBackendResolver(Routes(), instances, trigger, new ActivatorOptions());
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(), resolver, new RevisionConcurrency());
        gateway.Start();

        var reply = await TlsTestPeers.AskAsync(gateway.LocalEndPoint, "hello.fn.morphisms.local", certificate, "first request");
        Assert.Equal("cold-started instance: first request", reply);
        Assert.Single(trigger.Pokes);
    }

    [Fact]
    public async Task Through_the_gateway_overload_closes_the_connection_and_is_counted()
    {
        using var certificate = TlsTestPeers.SelfSigned("hello.fn.morphisms.local");
        var resolver = new ActivatingBackendResolver(Routes(), new RevisionInstances(), new RecordingTrigger(),
            new ActivatorOptions { MaxQueuedPerRevision = 0 });
        await using var gateway = new SniPassthroughGateway(new SniGatewayOptions(), resolver, new RevisionConcurrency());
        gateway.Start();
        await Assert.ThrowsAnyAsync<Exception>(() => TlsTestPeers.AskAsync(gateway.LocalEndPoint, "hello.fn.morphisms.local", certificate, "x"));
        Assert.Equal(1, gateway.RefusedForBackend);
    }

    [Fact]
    public async Task Closing_a_revision_fails_its_held_requests_at_once_and_a_namesake_starts_afresh()
    {
        var instances = new RevisionInstances();
        var resolver = new ActivatingBackendResolver(Routes(), instances, new RecordingTrigger(), new ActivatorOptions { QueueTimeout = TimeSpan.FromSeconds(30) });
        var held = resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None).AsTask();
        await Eventually.True(() => instances.Queued("hello-00001") == 1, "request queued");

        instances.Close("hello-00001", "function hello was removed");
        var refused = await Assert.ThrowsAsync<ActivatorOverloadedException>(() => held.WaitAsync(TimeSpan.FromSeconds(10))); // not after the 30 s timeout
        Assert.Equal("revision hello-00001: function hello was removed", refused.Message);
        Assert.Equal(0, instances.Queued("hello-00001"));

        // A request that read the route before the close and asks after it is refused too, not held for the timeout,
        // and what the stopped revision's supervisor still publishes is not handed out.
        instances.SetReady("hello-00001", [new IPEndPoint(IPAddress.Loopback, 1)]);
        Assert.Null(instances.TryPick("hello-00001"));
        var late = await Assert.ThrowsAsync<ActivatorOverloadedException>(() => resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("was removed", late.Message);

        // The revision runs again (a traffic change back to it): a fresh set, whose instances only its own requests get.
        instances.Open("hello-00001");
        var again = resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None).AsTask();
        await Eventually.True(() => instances.Queued("hello-00001") == 1, "request queued again");
        var endpoint = new IPEndPoint(IPAddress.Loopback, 2);
        instances.SetReady("hello-00001", [endpoint]);
        Assert.Equal(endpoint, (await again.WaitAsync(TimeSpan.FromSeconds(10)))!.Endpoint);
    }

    [Fact]
    public async Task A_refused_instance_is_left_out_and_with_none_other_ready_the_request_is_held_for_one()
    {
        var instances = new RevisionInstances();
        var resolver = new ActivatingBackendResolver(Routes(), instances, new RecordingTrigger(), new ActivatorOptions { QueueTimeout = TimeSpan.FromSeconds(30) });
        var stopping = new IPEndPoint(IPAddress.Loopback, 1);
        var other = new IPEndPoint(IPAddress.Loopback, 2);
        instances.SetReady("hello-00001", [stopping, other]);

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(new BackendTarget("hello-00001", other), await resolver.ResolveAsync("hello.fn.morphisms.local", [stopping], CancellationToken.None));
        }

        // Only the refused one ready (it died; the runtime has not noticed): held, as for a revision with none, until
        // another is ready, while a request that refused nothing still gets it.
        instances.SetReady("hello-00001", [stopping]);
        var held = resolver.ResolveAsync("hello.fn.morphisms.local", [stopping], CancellationToken.None).AsTask();
        await Eventually.True(() => instances.Queued("hello-00001") == 1, "request queued");
        Assert.Equal(stopping, (await resolver.ResolveAsync("hello.fn.morphisms.local", CancellationToken.None))!.Endpoint);
        instances.SetReady("hello-00001", [stopping]);
        Assert.False(held.IsCompleted);

        var replacement = new IPEndPoint(IPAddress.Loopback, 3);
        instances.SetReady("hello-00001", [stopping, replacement]);
        Assert.Equal(new BackendTarget("hello-00001", replacement, Held: true), await held.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, instances.Queued("hello-00001"));
    }
}
