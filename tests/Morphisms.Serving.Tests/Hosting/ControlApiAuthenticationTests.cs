using System.Net;
using System.Text;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// Every control route needs the host's control token: loopback alone lets in other users and the instances' own code.
/// A request without it changes nothing and learns nothing, whatever route it names.
/// </summary>
public sealed class ControlApiAuthenticationTests
{
    public static TheoryData<string, string?> NotTheToken => new()
    {
        { "no Authorization header", null },
        { "an empty bearer", "Bearer " },
        { "a wrong token of the right length", "Bearer " + new string('0', 2 * BearerToken.Bytes) },
        { "another host's control token", "Bearer " + BearerToken.New().Value },
        { "the token under another scheme", "Basic {token}" },
        { "the token without a scheme", "{token}" },
        { "the token with a byte more", "Bearer {token}0" },
        { "the token cut short", "Bearer {token-1}" },
    };

    [Theory]
    [MemberData(nameof(NotTheToken))]
    public async Task EveryRoute_WithoutTheControlToken_Is401_AndChangesNothing(string what, string? authorization)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("kept", "a", FunctionTee.None, new ScaleSpec { Min = 1 }), CancellationToken.None);
        var other = functions.Spec("planted", "b", FunctionTee.None);
        await File.WriteAllTextAsync(Path.Combine(other.Bundle, "function.yaml"), """
            name: planted
            tee: none
            bundle: .
            command: ["dotnet", "app.dll"]
            """);
        var token = host.ControlToken.Value;
        var header = authorization?.Replace("{token-1}", token[..^1], StringComparison.Ordinal).Replace("{token}", token, StringComparison.Ordinal);
        using var http = new HttpClient { BaseAddress = host.ControlUrl };

        (HttpMethod Method, string Path, string? Body)[] requests =
        [
            (HttpMethod.Post, "v1/functions", $$"""{"path": "{{other.Bundle}}"}"""),
            (HttpMethod.Get, "v1/functions", null),
            (HttpMethod.Get, "v1/functions/kept/revisions", null),
            (HttpMethod.Put, "v1/functions/kept/traffic", """{"traffic": [{"revision": "kept-00001", "percent": 100, "tag": "planted"}]}"""),
            (HttpMethod.Get, "v1/functions/kept/logs", null),
            (HttpMethod.Delete, "v1/functions/kept", null),
            (HttpMethod.Get, "metrics", null),
            (HttpMethod.Get, "v1/no-such-route", null),
        ];
        foreach (var (method, path, body) in requests)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
            if (header is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", header);
            }

            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{what}: {method} {path} answered {(int)response.StatusCode} {text}");
            Assert.Contains("\"errors\"", text);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
            Assert.DoesNotContain(token, text);
        }

        var kept = Assert.Single(host.List());
        Assert.Equal("kept", kept.Name);
        Assert.Null(Assert.Single(kept.Traffic).Tag);
        Assert.DoesNotContain(token, functions.Log.ToString());
    }

    [Fact]
    public async Task TheControlToken_OpensEveryRoute()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("kept", "a", FunctionTee.None, new ScaleSpec { Min = 1 }), CancellationToken.None);
        using var http = TestFunctions.ControlClient(host);

        foreach (var path in new[] { "v1/functions", "v1/functions/kept/revisions", "v1/functions/kept/logs", "metrics" })
        {
            using var response = await http.GetAsync(path);
            Assert.True(response.IsSuccessStatusCode, $"{path}: {(int)response.StatusCode}");
        }

        using var removed = await http.DeleteAsync("v1/functions/kept");
        Assert.True(removed.IsSuccessStatusCode);
        Assert.Empty(host.List());
    }

    [Fact]
    public async Task TheTokenFile_IsPrivate_NamedInTheStateFile_NewAtEachStart_AndRemovedAtStop()
    {
        using var functions = new TestFunctions();
        var stateFile = Path.Combine(functions.DataDir, ServingStateFile.FileName);
        BearerToken first;
        await using (var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher()))
        {
            first = host.ControlToken;
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(functions.ControlTokenFile));
            Assert.True(first.Matches(BearerToken.ReadFile(functions.ControlTokenFile).Value));
            Assert.DoesNotContain(first.Value, functions.Log.ToString());
            Assert.Equal("[bearer token]", first.ToString());
        }

        Assert.False(File.Exists(functions.ControlTokenFile));

        await using var second = new ServingHost(TokenFileOptions(functions, stateFile));
        await second.StartAsync(CancellationToken.None);
        Assert.Equal(Path.GetFullPath(functions.ControlTokenFile), ServingStateFile.Read(stateFile)!.ControlTokenFile);
        Assert.DoesNotContain(second.ControlToken.Value, await File.ReadAllTextAsync(stateFile));
        Assert.False(second.ControlToken.Matches(first.Value));

        // The previous start's token opens nothing now.
        using var http = new HttpClient { BaseAddress = second.ControlUrl };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", first.Value);
        using var response = await http.GetAsync("v1/functions");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task TheMetricsToken_OpensTheMetrics_AndNoOtherRoute()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("kept", "a", FunctionTee.None, new ScaleSpec { Min = 1 }), CancellationToken.None);
        var other = functions.Spec("planted", "b", FunctionTee.None);
        var metricsToken = BearerToken.ReadFile(functions.MetricsTokenFile);
        Assert.False(metricsToken.Matches(host.ControlToken.Value));
        using var http = new HttpClient { BaseAddress = host.ControlUrl };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", metricsToken.Value);

        using (var metrics = await http.GetAsync("metrics"))
        {
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
            Assert.Contains("# TYPE", await metrics.Content.ReadAsStringAsync());
        }

        (HttpMethod Method, string Path, string? Body)[] requests =
        [
            (HttpMethod.Post, "v1/functions", $$"""{"path": "{{other.Bundle}}"}"""),
            (HttpMethod.Get, "v1/functions", null),
            (HttpMethod.Get, "v1/functions/kept/logs", null),
            (HttpMethod.Put, "v1/functions/kept/traffic", """{"traffic": [{"revision": "kept-00001", "percent": 100, "tag": "planted"}]}"""),
            (HttpMethod.Delete, "v1/functions/kept", null),
            (HttpMethod.Post, "v1/instances/any/cold-start", "{}"),
        ];
        foreach (var (method, path, body) in requests)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path} answered {(int)response.StatusCode} {text}");
            Assert.DoesNotContain(metricsToken.Value, text);
        }

        using (var refused = await http.GetAsync("v1/functions"))
        {
            Assert.Contains("the metrics token opens GET /metrics only", await refused.Content.ReadAsStringAsync());
        }

        var kept = Assert.Single(host.List());
        Assert.Null(Assert.Single(kept.Traffic).Tag);
        Assert.DoesNotContain(metricsToken.Value, functions.Log.ToString());
    }

    [Fact]
    public async Task TheMetricsTokenFile_IsPrivate_NamedInTheStateFile_AndRemovedAtStop()
    {
        using var functions = new TestFunctions();
        var stateFile = Path.Combine(functions.DataDir, ServingStateFile.FileName);
        await using (var host = new ServingHost(TokenFileOptions(functions, stateFile) with { MetricsTokenFile = functions.MetricsTokenFile }))
        {
            await host.StartAsync(CancellationToken.None);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(functions.MetricsTokenFile));
            Assert.True(host.MetricsToken.Matches(BearerToken.ReadFile(functions.MetricsTokenFile).Value));
            var state = ServingStateFile.Read(stateFile)!;
            Assert.Equal(Path.GetFullPath(functions.MetricsTokenFile), state.MetricsTokenFile);
            Assert.DoesNotContain(host.MetricsToken.Value, await File.ReadAllTextAsync(stateFile));
        }

        Assert.False(File.Exists(functions.MetricsTokenFile));
    }

    private static ServingHostOptions TokenFileOptions(TestFunctions functions, string stateFile) => new()
    {
        Mode = GatewayMode.Http,
        DataDirectory = functions.DataDir,
        Launcher = new FakeLauncher(),
        StateFile = stateFile,
        ControlTokenFile = functions.ControlTokenFile,
        Log = TextWriter.Null,
    };
}
