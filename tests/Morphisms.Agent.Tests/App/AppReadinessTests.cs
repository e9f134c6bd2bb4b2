using System.Net;
using System.Net.Sockets;
using System.Text;
using Morphisms.Agent.App;
using Morphisms.Agent.Secrets;

namespace Morphisms.Agent.Tests.App;

/// <summary>
/// When the agent counts the app as ready: an HTTP answer on its port, not merely an open port, from a listener that is
/// the app's own (or a child's).
/// </summary>
public sealed class AppReadinessTests
{
    private static readonly SecretBundle NoSecrets = new(0, new Dictionary<string, string>(), new Dictionary<string, byte[]>(), []);

    [Fact]
    public async Task A_port_that_accepts_but_does_not_answer_HTTP_is_not_ready_until_it_does()
    {
        var port = TestProcesses.FreePort();
        var marker = Path.Combine(Path.GetTempPath(), $"morph-ready-{Guid.NewGuid():N}");
        using var app = AppProcess.Start(TestApp("--marker", marker, "--hang-up", "5"), NoSecrets, Path.GetTempPath(), port);
        try
        {
            await app.WaitReadyAsync(port, TimeSpan.FromSeconds(20), TimeProvider.System, CancellationToken.None);

            // Ready only after an HTTP answer: the app answers nothing before it has closed five connections unanswered.
            Assert.Equal("started;hung-up 5", await File.ReadAllTextAsync(marker));
            await app.StopAsync(TimeSpan.FromSeconds(2), TimeProvider.System);
        }
        finally
        {
            File.Delete(marker);
        }
    }

    /// <summary>
    /// Instances of a serving host share loopback, and the app binds its port only after attestation and secrets: another
    /// process that took the port first answers the probe as well as the app would, and would get every decrypted request.
    /// </summary>
    [Fact]
    public async Task Another_process_answering_HTTP_on_the_apps_port_is_refused_not_ready()
    {
        using var app = AppProcess.Start(["sleep", "30"], NoSecrets, Path.GetTempPath(), appPort: 1);
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var serving = AnswerHttpAsync(squatter, stop.Token);
        try
        {
            var refused = await Assert.ThrowsAsync<AgentException>(() => app.WaitReadyAsync(port, TimeSpan.FromSeconds(20), TimeProvider.System, CancellationToken.None));

            Assert.Equal(AgentExitCodes.AppNotReady, refused.ExitCode);
            Assert.Contains($"something other than the app (pid {app.Id}) or its children listens on 127.0.0.1:{port}", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            await stop.CancelAsync();
            await serving;
            await app.StopAsync(TimeSpan.FromSeconds(2), TimeProvider.System);
        }
    }

    /// <summary>
    /// A listener with SO_REUSEPORT is the app's now, but another process of its user (another function's instance on a
    /// serving host) could bind the port beside it later and be sent a share of the decrypted requests.
    /// </summary>
    [Fact]
    public async Task An_app_whose_listener_has_SO_REUSEPORT_is_refused_not_ready()
    {
        var port = TestProcesses.FreePort();
        using var app = AppProcess.Start(TestApp("--reuse-port"), NoSecrets, Path.GetTempPath(), port);
        try
        {
            var refused = await Assert.ThrowsAsync<AgentException>(() => app.WaitReadyAsync(port, TimeSpan.FromSeconds(20), TimeProvider.System, CancellationToken.None));

            Assert.Equal(AgentExitCodes.AppNotReady, refused.ExitCode);
            Assert.Contains($"the app's listener on 127.0.0.1:{port}", refused.Message, StringComparison.Ordinal);
            Assert.Contains("has SO_REUSEPORT set", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            await app.StopAsync(TimeSpan.FromSeconds(2), TimeProvider.System);
        }
    }

    [Fact]
    public async Task A_listener_held_by_a_child_of_the_app_counts_as_the_apps()
    {
        var port = TestProcesses.FreePort();

        // A launcher that does not exec its server: the listener is in the shell's child, not the process the agent started.
        using var app = AppProcess.Start(["/bin/sh", "-c", "\"$@\" & child=$!; trap 'kill $child' TERM; wait $child", "launcher", .. TestApp()], NoSecrets, Path.GetTempPath(), port);

        await app.WaitReadyAsync(port, TimeSpan.FromSeconds(20), TimeProvider.System, CancellationToken.None);

        await app.StopAsync(TimeSpan.FromSeconds(5), TimeProvider.System);
    }

    [Fact]
    public async Task An_app_that_never_listens_fails_after_the_timeout_and_one_that_exits_fails_at_once()
    {
        var closedPort = TestProcesses.FreePort();
        using (var silent = AppProcess.Start(["sleep", "30"], NoSecrets, Path.GetTempPath(), closedPort))
        {
            var timedOut = await Assert.ThrowsAsync<AgentException>(() => silent.WaitReadyAsync(closedPort, TimeSpan.FromMilliseconds(200), TimeProvider.System, CancellationToken.None));
            Assert.Equal(AgentExitCodes.AppNotReady, timedOut.ExitCode);
            Assert.Contains("did not answer", timedOut.Message, StringComparison.Ordinal);
            await silent.StopAsync(TimeSpan.FromSeconds(2), TimeProvider.System);
        }

        using var failing = AppProcess.Start(["sh", "-c", "exit 3"], NoSecrets, Path.GetTempPath(), closedPort);
        var exited = await Assert.ThrowsAsync<AgentException>(() => failing.WaitReadyAsync(closedPort, TimeSpan.FromSeconds(20), TimeProvider.System, CancellationToken.None));
        Assert.Contains("exited with code 3", exited.Message, StringComparison.Ordinal);
    }

    private static string[] TestApp(params string[] args) =>
        [TestProcesses.DotnetHost, typeof(TestAppEntry).Assembly.Location, "app", .. args];

    // Answers every connection with a 404, as any HTTP server would.
    private static async Task AnswerHttpAsync(TcpListener listener, CancellationToken stop)
    {
        try
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync(stop);
                var stream = client.GetStream();
                if (await stream.ReadAsync(new byte[4096], stop) > 0)
                {
                    await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), stop);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
        {
        }
    }
}
