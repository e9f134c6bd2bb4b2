using System.Net;

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
}
