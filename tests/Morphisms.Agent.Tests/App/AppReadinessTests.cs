using System.Net;
using System.Net.Sockets;
using System.Text;
using Morphisms.Agent.App;
using Morphisms.Agent.Secrets;

namespace Morphisms.Agent.Tests.App;

/// <summary>When the agent counts the app as ready: an HTTP answer on its port, not merely an open port.</summary>
public sealed class AppReadinessTests
{
    private static readonly SecretBundle NoSecrets = new(0, new Dictionary<string, string>(), new Dictionary<string, byte[]>(), []);

    [Fact]
    public async Task A_port_that_accepts_but_does_not_answer_HTTP_is_not_ready_until_it_does()
    {
        using var app = AppProcess.Start(["sleep", "30"], NoSecrets, Path.GetTempPath(), appPort: 1);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var answering = false;
        var hungUp = 0;
        var server = Task.Run(async () =>
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync();
                if (!Volatile.Read(ref answering))
                {
                    // Accept and close, as a server still wiring up its HTTP pipeline can.
                    if (Interlocked.Increment(ref hungUp) >= 5)
                    {
                        Volatile.Write(ref answering, true);
                    }

                    continue;
                }

                var stream = client.GetStream();
                var request = new byte[4096];
                if (await stream.ReadAsync(request) > 0)
                {
                    await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
                    return;
                }
            }
        });

        await app.WaitReadyAsync(port, TimeSpan.FromSeconds(20), TimeProvider.System, CancellationToken.None);

        // Ready only after an HTTP answer (a 404 counts): the server task ends once it has answered one.
        await server.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(Volatile.Read(ref hungUp) >= 5);
        await app.StopAsync(TimeSpan.FromSeconds(2), TimeProvider.System);
    }

    [Fact]
    public async Task An_app_that_never_listens_fails_after_the_timeout_and_one_that_exits_fails_at_once()
    {
        var closedPort = FreePort();
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
