using Morphisms.Cli.Commands.Serving;

namespace Morphisms.Cli.Tests.Serving;

/// <summary>The serving commands' client must pass the control API's Host check (loopback names only).</summary>
public sealed class ServingControlTests
{
    [Theory]
    [InlineData("http://127.0.0.1:4100")]
    [InlineData("http://127.0.0.1:4100/")]
    [InlineData("http://localhost:4100")]
    [InlineData("http://[::1]:4100")]
    public void ALoopbackControlUrl_KeepsItsOwnHost(string url)
    {
        using var http = ServingControl.CreateClient(url);
        Assert.Null(http.DefaultRequestHeaders.Host);
        Assert.EndsWith("/", http.BaseAddress!.ToString());
    }

    [Theory]
    [InlineData("http://vm:4100", "localhost:4100")]
    [InlineData("http://serving.local:4200/", "localhost:4200")]
    public void AnotherNameForTheControlApi_SendsHostLocalhost(string url, string expected)
    {
        using var http = ServingControl.CreateClient(url);
        Assert.Equal(expected, http.DefaultRequestHeaders.Host);
    }
}
