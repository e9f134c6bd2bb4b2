using System.Net;
using System.Net.Sockets;

namespace Morphisms.Samples.Tests;

/// <summary>The hello sample as a real process.</summary>
public sealed class HelloTests
{
    [Fact]
    public async Task It_greets_with_the_function_and_revision_from_the_environment()
    {
        await using var hello = await SampleProcess.StartAsync("Hello", new Dictionary<string, string>
        {
            ["MORPH_FUNCTION"] = "greeter",
            ["MORPH_REVISION"] = "greeter-00002",
        });
        Assert.Equal("hello from greeter (greeter-00002)\n", await hello.Client.GetStringAsync(""));
        Assert.Equal("ok", await hello.Client.GetStringAsync("healthz"));
    }

    [Fact]
    public async Task Without_the_environment_it_falls_back_to_Knative_names_then_defaults()
    {
        await using (var knative = await SampleProcess.StartAsync("Hello", new Dictionary<string, string> { ["K_SERVICE"] = "kn", ["K_REVISION"] = "kn-1" }))
        {
            Assert.Equal("hello from kn (kn-1)\n", await knative.Client.GetStringAsync(""));
        }

        await using var bare = await SampleProcess.StartAsync("Hello");
        Assert.Equal("hello from hello (unknown)\n", await bare.Client.GetStringAsync(""));
        using var missing = await bare.Client.GetAsync("nope");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Theory]
    [InlineData("Hello", "")]
    [InlineData("Signer", "healthz")]
    public async Task With_MORPH_APP_SOCKET_it_serves_on_that_unix_socket_and_not_on_PORT(string sample, string path)
    {
        // As morph-init starts it under Gramine: no TCP (the host's), a UNIX domain socket instead.
        var dir = Directory.CreateTempSubdirectory("morph-sock-").FullName;
        try
        {
            var socket = Path.Combine(dir, "app.sock");
            await using var app = SampleProcess.Launch(sample, new Dictionary<string, string>
            {
                ["MORPH_APP_SOCKET"] = socket,
                ["SIGNER_GENERATE_KEY"] = "true",
            });
            using var http = new HttpClient(new SocketsHttpHandler
            {
                ConnectCallback = async (_, ct) =>
                {
                    var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), ct);
                    return new NetworkStream(s, ownsSocket: true);
                },
            }) { BaseAddress = new Uri("http://localhost/") };
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            HttpResponseMessage? response = null;
            while (response is null)
            {
                Assert.False(app.HasExited, app.Stderr);
                try
                {
                    response = await http.GetAsync(path, timeout.Token);
                }
                catch (HttpRequestException)
                {
                    await Task.Delay(25, timeout.Token);
                }
            }

            using (response)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            }

            await Assert.ThrowsAnyAsync<HttpRequestException>(() => app.Client.GetAsync(path));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
