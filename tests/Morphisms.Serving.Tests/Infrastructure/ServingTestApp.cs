using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Morphisms.Serving.Tests;

/// <summary>
/// The test assembly's own entry point: the function app instances run (<c>dotnet Morphisms.Serving.Tests.dll app</c>),
/// so only the SDK the tests already need is assumed. Plain HTTP/1.1 keep-alive on <c>127.0.0.1:$PORT</c>; every
/// answer names the revision (<c>REV</c>, from the measured env) and the pid. <c>/crash</c> answers and then exits
/// with code 3 (crash recovery tests); <c>/slow</c> answers after 1.5 s. <c>agent</c> stands in for morph-init (see
/// <see cref="FakeAgentAsync"/>); <c>caps-probe</c> is <see cref="CapabilityProbe"/>. The xunit runner never calls it.
/// </summary>
public static class ServingTestApp
{
    // A fresh value per process: under a PID namespace a restarted app can get the same pid again.
    private static readonly string Boot = Guid.NewGuid().ToString("N");

    /// <summary>Runs the app until SIGTERM.</summary>
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "agent")
        {
            return await FakeAgentAsync(args);
        }

        if (args is ["caps-probe", var locked])
        {
            return CapabilityProbe.Run(locked);
        }

        if (args.Length == 0 || args[0] != "app")
        {
            await Console.Error.WriteLineAsync("usage: app | agent MORPH-INIT-ARGS | caps-probe FILE");
            return 2;
        }

        using var stop = new CancellationTokenSource();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var port = int.Parse(Environment.GetEnvironmentVariable("PORT")!, System.Globalization.CultureInfo.InvariantCulture);
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        Console.WriteLine($"app listening on {port}");
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var client = await listener.AcceptTcpClientAsync(stop.Token);
                _ = ServeAsync(client);
            }
        }
        catch (OperationCanceledException)
        {
        }

        listener.Stop();
        Console.WriteLine("app drained");
        return 0;
    }

    /// <summary>
    /// morph-init's part the serving host sees, and no more: it accepts connections on <c>--port</c> (the TLS port the
    /// readiness probe tries) and POSTs a cold-start report (attestation phases adding up to 1234 ms) to
    /// <c>--report-url</c> with the token in the file <c>MORPH_REPORT_TOKEN_FILE</c> names (deleted once read, as morph-init does, unless <c>FAKE_AGENT_KEEPS_TOKEN_FILE=1</c>: an agent older than the hand-over), unless <c>FAKE_AGENT_SILENT=1</c>. It never
    /// prints the <c>cold_start</c> log event, so the instance is ready only once its report was accepted.
    /// </summary>
    private static async Task<int> FakeAgentAsync(string[] args)
    {
        string Arg(string name) => args[Array.IndexOf(args, name) + 1];
        using var stop = new CancellationTokenSource();
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var listener = new TcpListener(IPAddress.Loopback, int.Parse(Arg("--port"), System.Globalization.CultureInfo.InvariantCulture));
        listener.Start();
        var tokenFile = Environment.GetEnvironmentVariable("MORPH_REPORT_TOKEN_FILE");
        if (tokenFile is { Length: > 0 } && !File.Exists(tokenFile))
        {
            // As morph-init refuses: said in the instance's log rather than an unhandled exception's abort (exit 134).
            Console.Error.WriteLine($"fake agent: the report token file {tokenFile} is gone");
            return 2;
        }

        var token = tokenFile is { Length: > 0 } ? File.ReadAllText(tokenFile).Trim() : null;
        if (tokenFile is { Length: > 0 } && Environment.GetEnvironmentVariable("FAKE_AGENT_KEEPS_TOKEN_FILE") != "1")
        {
            File.Delete(tokenFile);
        }

        if (Environment.GetEnvironmentVariable("FAKE_AGENT_SILENT") != "1")
        {
            using var http = new HttpClient();
            using var request = new HttpRequestMessage(HttpMethod.Post, Arg("--report-url"))
            {
                Content = new StringContent("""{"phases_ms": {"keygen": 1000, "evidence": 234}, "total_ms": 1300}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request);
            Console.WriteLine($"fake agent: report answered {(int)response.StatusCode}");
        }

        try
        {
            while (!stop.IsCancellationRequested)
            {
                (await listener.AcceptTcpClientAsync(stop.Token)).Dispose();
            }
        }
        catch (OperationCanceledException)
        {
        }

        listener.Stop();
        return 0;
    }

    private static async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var reader = new StreamReader(stream, Encoding.ASCII);
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                while (!string.IsNullOrEmpty(await reader.ReadLineAsync()))
                {
                }

                var path = line.Split(' ') is { Length: > 1 } parts ? parts[1] : "/";
                if (path.StartsWith("/slow", StringComparison.Ordinal))
                {
                    await Task.Delay(1500);
                }

                var body = Encoding.UTF8.GetBytes($"rev={Environment.GetEnvironmentVariable("REV")};pid={Environment.ProcessId};boot={Boot}");
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\n\r\n"));
                await stream.WriteAsync(body);
                await stream.FlushAsync();
                if (path.StartsWith("/crash", StringComparison.Ordinal))
                {
                    Console.Error.WriteLine("app: crashing on request");
                    Environment.Exit(3);
                }
            }
        }
        catch (IOException)
        {
        }
    }
}
