using System.Net;
using System.Text.Json.Nodes;
using Morphisms.Cli.Tests.Up;
using Morphisms.Kms.Tests;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// <c>morph kms server --storage postgres:file=… --api-addr URL</c> as real processes on one real PostgreSQL
/// database: the advertised address is what standbys name and redirect to, and a standby takes over after
/// <c>kill -9</c> of the active node.
/// </summary>
public sealed class KmsServerHaTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>, IAsyncLifetime
{
    private readonly string _home = Directory.CreateTempSubdirectory("morph-kms-ha-").FullName;
    private readonly List<MorphProcess> _nodes = [];

    [Fact]
    public async Task Nodes_advertise_their_api_address_and_fail_over()
    {
        var secret = Path.Combine(_home, "pg");
        await File.WriteAllTextAsync(secret, await postgres.Server.CreateDatabaseAsync());
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var ports = new[] { TestProcesses.FreePort(), TestProcesses.FreePort() };
        foreach (var port in ports)
        {
            // The advertised name differs from the listen address, so the flag (not the default) is what shows.
            var node = MorphProcess.Start(_home, "kms", "server", "--listen", $"127.0.0.1:{port}", "--storage", "postgres:file=" + secret, "--api-addr", $"http://localhost:{port}");
            _nodes.Add(node);
            await node.WaitForAsync("listening ");
        }

        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(10) };
        var first = $"http://127.0.0.1:{ports[0]}/v1/";
        var second = $"http://127.0.0.1:{ports[1]}/v1/";
        var init = await SendAsync(http, HttpMethod.Put, first + "sys/init", """{"secret_shares":1,"secret_threshold":1}""");
        var key = init!["keys"]![0]!.GetValue<string>();
        await SendAsync(http, HttpMethod.Put, first + "sys/unseal", $$"""{"key":"{{key}}"}""");
        await WaitForHealthAsync(http, first, HttpStatusCode.OK);
        await SendAsync(http, HttpMethod.Put, second + "sys/unseal", $$"""{"key":"{{key}}"}""");
        await WaitForHealthAsync(http, second, HttpStatusCode.TooManyRequests);

        var standbyStatus = await MorphRunner.RunAsync("kms", "status", "--address", $"http://127.0.0.1:{ports[1]}");
        Assert.Equal(ExitCodes.Ok, standbyStatus.ExitCode);
        Assert.Matches(@"ha mode\s+standby", standbyStatus.Stdout);
        Assert.Matches($@"active node\s+http://localhost:{ports[0]}", standbyStatus.Stdout);
        var activeStatus = await MorphRunner.RunAsync("kms", "status", "--address", $"http://127.0.0.1:{ports[0]}", "--json");
        Assert.Equal("active", JsonNode.Parse(activeStatus.Stdout)!["ha"]!["mode"]!.GetValue<string>());

        var leader = await SendAsync(http, HttpMethod.Get, second + "sys/leader");
        Assert.Equal($"http://localhost:{ports[0]}", leader!["leader_address"]!.GetValue<string>());
        using (var redirected = await http.GetAsync(second + "sys/mounts?x=1"))
        {
            Assert.Equal(HttpStatusCode.TemporaryRedirect, redirected.StatusCode);
            Assert.Equal($"http://localhost:{ports[0]}/v1/sys/mounts?x=1", redirected.Headers.Location!.OriginalString);
        }

        var active = _nodes[0];
        _nodes.Remove(active);
        await active.DisposeAsync(); // SIGKILL
        await WaitForHealthAsync(http, second, HttpStatusCode.OK);
        Assert.Equal($"http://localhost:{ports[1]}", (await SendAsync(http, HttpMethod.Get, second + "sys/leader"))!["leader_address"]!.GetValue<string>());

        // Nothing the nodes printed carries the connection string's password.
        Assert.DoesNotContain(postgres.Server.Password, active.Stdout + active.Stderr + _nodes[0].Stdout + _nodes[0].Stderr, StringComparison.Ordinal);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }

        Directory.Delete(_home, recursive: true);
    }

    private static async Task<JsonObject?> SendAsync(HttpClient http, HttpMethod method, string url, string? body = null)
    {
        using var request = new HttpRequestMessage(method, url);
        if (body is not null)
        {
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {url}: {(int)response.StatusCode} {text}");
        return text.Length == 0 ? null : JsonNode.Parse(text) as JsonObject;
    }

    private static async Task WaitForHealthAsync(HttpClient http, string node, HttpStatusCode expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var last = default(HttpStatusCode);
        while (DateTime.UtcNow < deadline)
        {
            using (var response = await http.GetAsync(node + "sys/health"))
            {
                last = response.StatusCode;
            }

            if (last == expected)
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"{node}sys/health stayed {(int)last}, expected {(int)expected}");
    }
}
