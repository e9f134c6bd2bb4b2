using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Morphisms.Cli;
using Morphisms.Serving.Hosting;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// The control API listens on loopback, so a page in the user's browser must not be able to use it: not by a "simple"
/// cross-origin POST (text/plain or a form, no CORS preflight), not by DNS rebinding (a name of the attacker's that
/// resolves to 127.0.0.1, sent as the Host). These checks hold even for a request that carries the control token.
/// </summary>
public sealed class ControlApiGuardTests
{
    [Theory]
    [InlineData("text/plain")]
    [InlineData("text/plain;charset=UTF-8")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData(null)]
    public async Task ABodyThatIsNotDeclaredJson_IsRefused_AndNothingIsDeployed(string? contentType)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        var dir = FunctionDirectory();
        using var http = TestFunctions.ControlClient(host);

        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes($$"""{"path": "{{dir}}"}"""));
        if (contentType is not null)
        {
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        using var response = await http.PostAsync("v1/functions", content);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Contains("needs Content-Type: application/json", await response.Content.ReadAsStringAsync());
        Assert.Empty(host.List());

        // The same request declared as JSON deploys: the refusal was the content type, not the body.
        using var json = new StringContent($$"""{"path": "{{dir}}"}""", Encoding.UTF8, "application/json");
        using var deployed = await http.PostAsync("v1/functions", json);
        Assert.True(deployed.IsSuccessStatusCode, await deployed.Content.ReadAsStringAsync());
        Assert.Single(host.List());
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task AColdStartReportNotDeclaredJson_IsRefused()
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        using var http = TestFunctions.ControlClient(host);

        using var plain = new StringContent("{}", Encoding.UTF8, "text/plain");
        using var refused = await http.PostAsync("v1/instances/unknown/cold-start", plain);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);

        // No instance of that name, so no report token can open its route (the control token does not either).
        using var json = new StringContent("{}", Encoding.UTF8, "application/json");
        using var unknown = await http.PostAsync("v1/instances/unknown/cold-start", json);
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
    }

    [Theory]
    [InlineData("attacker.example")]
    [InlineData("127.0.0.1.attacker.example")]
    [InlineData("localhost.attacker.example")]
    [InlineData("10.0.0.1")]
    [InlineData("[::2]")]
    public async Task AHostThatIsNotLoopback_IsRefused_EvenForReads(string name)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        var dir = FunctionDirectory();
        using var http = TestFunctions.ControlClient(host);

        using (var list = new HttpRequestMessage(HttpMethod.Get, "v1/functions"))
        {
            list.Headers.Host = $"{name}:{host.ControlUrl.Port}";
            using var response = await http.SendAsync(list);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, response.StatusCode);
            Assert.Contains("loopback Host", await response.Content.ReadAsStringAsync());
        }

        using (var metrics = new HttpRequestMessage(HttpMethod.Get, "metrics"))
        {
            metrics.Headers.Host = name;
            using var response = await http.SendAsync(metrics);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, response.StatusCode);
        }

        using (var deploy = new HttpRequestMessage(HttpMethod.Post, "v1/functions"))
        {
            deploy.Headers.Host = $"{name}:{host.ControlUrl.Port}";
            deploy.Content = new StringContent($$"""{"path": "{{dir}}"}""", Encoding.UTF8, "application/json");
            using var response = await http.SendAsync(deploy);
            Assert.Equal(HttpStatusCode.MisdirectedRequest, response.StatusCode);
        }

        Assert.Empty(host.List());
        Directory.Delete(dir, recursive: true);
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("LOCALHOST")]
    [InlineData("127.0.0.1")]
    [InlineData("127.1.2.3")]
    [InlineData("[::1]")]
    public async Task ALoopbackHost_WithOrWithoutPort_IsServed(string name)
    {
        using var functions = new TestFunctions();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: new FakeLauncher());
        using var http = TestFunctions.ControlClient(host);

        foreach (var value in new[] { name, $"{name}:{host.ControlUrl.Port}" })
        {
            using var list = new HttpRequestMessage(HttpMethod.Get, "v1/functions");
            list.Headers.Host = value;
            using var response = await http.SendAsync(list);
            Assert.True(response.IsSuccessStatusCode, $"{value}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    [Fact]
    public async Task TheCli_SendsJsonAndALoopbackHost()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var dir = FunctionDirectory();

        string[] control = ["--control", host.ControlUrl.ToString(), "--control-token-file", functions.ControlTokenFile];
        var (code, output) = await Morph(["deploy", dir, .. control]);
        Assert.True(code == 0, output);
        Assert.Contains("echo: revision echo-00001 created", output);

        (code, output) = await Morph(["traffic", "echo", "echo-00001=100", .. control]);
        Assert.True(code == 0, output);

        (code, output) = await Morph(["ls", .. control]);
        Assert.True(code == 0, output);
        Assert.Contains("echo", output);

        (code, output) = await Morph(["rm", "echo", .. control]);
        Assert.True(code == 0, output);
        Assert.Empty(host.List());
        Directory.Delete(dir, recursive: true);
    }

    private static string FunctionDirectory()
    {
        var dir = Directory.CreateTempSubdirectory("morph-guard-fn-").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "bundle"));
        File.WriteAllText(Path.Combine(dir, "function.yaml"), """
            name: echo
            tee: none
            bundle: bundle
            command: ["dotnet", "app.dll"]
            scale: { min: 1 }
            """);
        return dir;
    }

    private static async Task<(int Code, string Output)> Morph(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await MorphCli.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString() + stderr);
    }
}
