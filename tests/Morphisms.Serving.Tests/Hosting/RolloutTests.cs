using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Cli;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// Traffic moves to a revision that starts with instances only once it has a ready one (Knative routes to the latest
/// ready revision): the route used to move, and the old revisions to drain, as soon as a deploy made the new one, so
/// every deploy sent users through a cold start, and a revision that never got ready took the function down.
/// </summary>
public sealed class RolloutTests
{
    private const string Host = "fn.fn.morphisms.local";

    // min 1: the old revision keeps its instance however long the fake clock runs, so "it still serves" is checkable.
    private static readonly ScaleSpec KeepOne = new() { Min = 1 };

    [Fact]
    public async Task A_new_revision_gets_the_route_only_once_it_has_a_ready_instance_and_the_old_one_serves_until_then()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var first = await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
        Assert.Equal("routed at once (the function's first route)", first.Rollout); // nothing to keep, so no wait
        Instance(launcher, "fn-00001").MarkReady();
        await Eventually.True(() => host.Instances.Ready("fn-00001").Count == 1, "the first revision ready");

        var deploy = host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None), CancellationToken.None);
        await Eventually.True(() => launcher.Launched.Any(i => i.Id.StartsWith("fn-00002-", StringComparison.Ordinal)), "the new revision's instance started");

        Assert.False(deploy.IsCompleted, "the deploy waits for the new revision's first ready instance");
        Assert.Equal("fn-00001", host.Routes.Resolve(Host));
        Assert.Equal([("fn-00001", 100)], host.List().Single().Traffic.Select(t => (t.Revision, t.Percent)));
        Assert.False(Instance(launcher, "fn-00001").Stopped, "the old revision is not drained while the new one starts");

        Instance(launcher, "fn-00002").MarkReady();
        var second = await deploy.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.StartsWith("routed once fn-00002 had a ready instance (", second.Rollout, StringComparison.Ordinal);
        Assert.Equal("fn-00002", host.Routes.Resolve(Host));
        Assert.Single(host.Instances.Ready("fn-00002"));
        await Eventually.True(() => Instance(launcher, "fn-00001").Stopped, "the old revision drained once the new one took the route");
    }

    [Fact]
    public async Task A_revision_not_ready_within_its_progress_deadline_gets_no_traffic_and_the_deploy_says_where_it_stayed()
    {
        using var functions = new TestFunctions();
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, time: time);
        await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None, KeepOne), CancellationToken.None);
        var old = Instance(launcher, "fn-00001");
        old.MarkReady();
        await Eventually.True(() => host.Instances.Ready("fn-00001").Count == 1, "the first revision ready");

        var deploy = host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None, KeepOne), CancellationToken.None);
        await Eventually.True(() => launcher.Launched.Any(i => i.Id.StartsWith("fn-00002-", StringComparison.Ordinal)), "the new revision's instance started");
        await AdvanceUntil(time, () => deploy.IsCompleted, TimeSpan.FromMinutes(10), "the deploy gave up at the progress deadline");

        var error = await Assert.ThrowsAsync<ServingException>(() => deploy);
        Assert.True(error.NotReady);
        Assert.Equal("fn: revision fn-00002 did not become ready within its progress deadline (600 s), so traffic was not moved to it and stays "
            + "where it was (fn-00001 100 %); its instances' output: morph logs fn", error.Message);
        Assert.Equal("fn-00001", host.Routes.Resolve(Host));
        Assert.False(old.Stopped, "the old revision still serves");
        Assert.Null(host.Supervisor("fn-00002")); // stopped again: no crash loop, no attestation at every restart
        Assert.All(launcher.Launched.Where(i => i.Id.StartsWith("fn-00002-", StringComparison.Ordinal)), i => Assert.True(i.Stopped));
        // The revision was made (and would be registered): deploying the same spec again tries it again.
        Assert.Equal(["fn-00001", "fn-00002"], host.Revisions("fn").Select(r => r.Name));
        Assert.Equal("fn-00002", host.List().Single().Latest);
    }

    [Fact]
    public async Task A_traffic_change_to_a_revision_never_ready_is_a_409_that_morph_traffic_prints_and_the_route_stays()
    {
        using var functions = new TestFunctions();
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2025-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher, time: time);
        await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None, KeepOne), CancellationToken.None);
        Instance(launcher, "fn-00001").MarkReady();
        // A new tag moves no traffic (its host answered nothing before): routed at once, though fn-00002 is not ready.
        var tagged = await host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None, KeepOne) with
        {
            Traffic = [new TrafficSpec("fn-00001", 100, null), new TrafficSpec("latest", 0, "next")],
        }, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("routed at once", tagged.Rollout);
        Assert.Equal("fn-00002", host.Routes.Resolve("next-fn.fn.morphisms.local"));

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var traffic = MorphCli.RunAsync(["traffic", "fn", "fn-00002=100", "--control", host.ControlUrl.ToString(), "--control-token-file", functions.ControlTokenFile], stdout, stderr);
        await AdvanceUntil(time, () => traffic.IsCompleted, TimeSpan.FromMinutes(10), "the traffic change gave up at the progress deadline");

        Assert.Equal(ExitCodes.Rejected, await traffic);
        Assert.Equal("morph: 409: fn: revision fn-00002 did not become ready within its progress deadline (600 s), so traffic was not moved to it and stays "
            + "where it was (fn-00001 100 %, fn-00002 0 % (tag next)); its instances' output: morph logs fn", stderr.ToString().Trim());
        Assert.Equal("fn-00001", host.Routes.Resolve(Host));
        Assert.NotNull(host.Supervisor("fn-00002")); // it keeps its tag: only what the refused change started is stopped

        // The control API's answer itself.
        using var http = TestFunctions.ControlClient(host);
        var put = http.PutAsync("v1/functions/fn/traffic", new StringContent("""{"traffic": [{"revision": "fn-00002", "percent": 100}]}""", Encoding.UTF8, "application/json"));
        // Past its deadline already: refused at once, whatever the clock does.
        using var response = await put.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Contains("did not become ready within its progress deadline", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["errors"]![0]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_revision_deployed_with_initial_scale_zero_gets_the_route_at_once()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var fromZero = new ScaleSpec { Initial = 0 };
        await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None, fromZero), CancellationToken.None);

        // No instance to wait for (Knative's zero initial scale): the first request waits at the activator instead.
        var second = await host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None, fromZero), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal("routed at once", second.Rollout);
        Assert.Equal("fn-00002", host.Routes.Resolve(Host));
        Assert.Empty(launcher.Launched);
    }

    [Fact]
    public async Task Changes_of_one_function_apply_in_the_order_they_came_while_the_first_waits_for_a_ready_instance()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
        Instance(launcher, "fn-00001").MarkReady();
        await Eventually.True(() => host.Instances.Ready("fn-00001").Count == 1, "the first revision ready");
        var deploy = host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None), CancellationToken.None);
        await Eventually.True(() => launcher.Launched.Any(i => i.Id.StartsWith("fn-00002-", StringComparison.Ordinal)), "the new revision's instance started");

        // A rollback asked for while the deploy waits: applied first (fn-00001 is ready, nothing to wait for), the
        // deploy would then have routed fn-00002 when it got ready, over the later request.
        var rollback = host.SetTrafficAsync("fn", [new TrafficSpec("fn-00001", 100, null)], CancellationToken.None);
        // Another function is not held up by fn's wait.
        await host.DeployAsync(functions.Spec("other", "a", FunctionTee.None), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(rollback.IsCompleted, "the rollback waits for the deploy that came first");

        Instance(launcher, "fn-00002").MarkReady();
        await deploy.WaitAsync(TimeSpan.FromSeconds(30));
        // The deploy drained fn-00001; the rollback starts it again and waits for it in turn.
        await Eventually.True(() => launcher.Launched.Count(i => i.Id.StartsWith("fn-00001-", StringComparison.Ordinal)) == 2, "fn-00001 started again");
        launcher.Launched.Last(i => i.Id.StartsWith("fn-00001-", StringComparison.Ordinal)).MarkReady();
        var status = await rollback.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal([("fn-00001", 100)], status.Traffic.Select(t => (t.Revision, t.Percent)));
        Assert.Equal("fn-00001", host.Routes.Resolve(Host));
        Assert.Null(host.Supervisor("fn-00002"));
    }

    [Fact]
    public async Task An_rm_while_a_deploy_waits_removes_the_function_and_the_deploy_says_nothing_was_routed()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
        Instance(launcher, "fn-00001").MarkReady();
        var deploy = host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None), CancellationToken.None);
        await Eventually.True(() => launcher.Launched.Any(i => i.Id.StartsWith("fn-00002-", StringComparison.Ordinal)), "the new revision's instance started");

        await host.RemoveAsync("fn", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)); // not held up by the deploy's wait

        var error = await Assert.ThrowsAsync<ServingException>(() => deploy.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.True(error.NotFound);
        Assert.Equal("fn was removed while fn-00002 was starting: no traffic was moved", error.Message);
        Assert.Empty(host.List());
        Assert.Null(host.Routes.Resolve(Host));
        Assert.All(launcher.Launched, i => Assert.True(i.Stopped));
    }

    [Fact]
    public async Task A_deploy_whose_caller_goes_away_while_it_waits_moves_no_traffic_and_stops_what_it_started()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
        Instance(launcher, "fn-00001").MarkReady();
        using var caller = new CancellationTokenSource();
        var deploy = host.DeployAsync(functions.Spec("fn", "b", FunctionTee.None), caller.Token);
        await Eventually.True(() => launcher.Launched.Any(i => i.Id.StartsWith("fn-00002-", StringComparison.Ordinal)), "the new revision's instance started");

        await caller.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => deploy.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("fn-00001", host.Routes.Resolve(Host));
        Assert.Null(host.Supervisor("fn-00002"));
        Assert.False(Instance(launcher, "fn-00001").Stopped);
        // The function's gate was released: a later change goes through.
        await host.SetTrafficAsync("fn", [new TrafficSpec("fn-00001", 100, "blue")], CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Stopping_the_host_ends_a_deploy_that_waits_for_a_ready_instance_through_the_control_api_at_once()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher(readyAtOnce: false);
        var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var stopping = Task.CompletedTask;
        try
        {
            await host.DeployAsync(functions.Spec("fn", "a", FunctionTee.None), CancellationToken.None);
            Instance(launcher, "fn-00001").MarkReady();
            var dir = Directory.CreateTempSubdirectory("morph-rollout-fn-").FullName;
            Directory.CreateDirectory(Path.Combine(dir, "bundle"));
            await File.WriteAllTextAsync(Path.Combine(dir, "function.yaml"), """
                name: fn
                tee: none
                bundle: bundle
                command: ["dotnet", "app.dll"]
                env: { REV: "b" }
                """);
            using var http = TestFunctions.ControlClient(host);
            var deploy = http.PostAsync("v1/functions", new StringContent(new JsonObject { ["path"] = dir }.ToJsonString(), Encoding.UTF8, "application/json"));
            await Eventually.True(() => launcher.Launched.Any(i => i.Id.StartsWith("fn-00002-", StringComparison.Ordinal)), "the new revision's instance started");

            stopping = host.DisposeAsync().AsTask();

            // Not after the control API's shutdown timeout (30 s), nor the revision's progress deadline.
            await stopping.WaitAsync(TimeSpan.FromSeconds(20));
            using var response = await deploy.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Contains("stopping", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.All(launcher.Launched, i => Assert.True(i.Stopped));
            Directory.Delete(dir, recursive: true);
        }
        finally
        {
            await stopping;
            await host.DisposeAsync();
        }
    }

    private static FakeInstance Instance(FakeLauncher launcher, string revision) =>
        launcher.Launched.First(i => i.Id.StartsWith(revision + "-", StringComparison.Ordinal));

    /// <summary>
    /// Moves the fake clock in 10 s steps until <paramref name="done"/>, which must not hold before
    /// <paramref name="notBefore"/> of fake time; stepping fires the autoscaler's and supervisor's timers on the way as
    /// the real clock would. Bounded in real time.
    /// </summary>
    private static async Task AdvanceUntil(FakeTimeProvider time, Func<bool> done, TimeSpan notBefore, string what)
    {
        var step = TimeSpan.FromSeconds(10);
        var elapsed = TimeSpan.Zero;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!done())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what}: not reached in 60 s (fake time advanced {elapsed.TotalSeconds} s)");
            time.Advance(step);
            elapsed += step;
            await Task.Delay(5);
        }

        Assert.True(elapsed >= notBefore, $"{what}: happened after {elapsed.TotalSeconds} s of fake time, before {notBefore.TotalSeconds} s");
    }
}
