using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Tests.Evidence;

namespace Morphisms.Agent.Tests.EndToEnd;

/// <summary>
/// The whole agent taking its KMS CA pin from the measured launch configuration: an SNP guest on a fake configfs-tsm
/// tree (refusals happen before the KMS is contacted), a TDX guest whose host rewrote the quote's MRCONFIGID, and a
/// full cold start whose only pin is simulated HOST_DATA.
/// </summary>
public sealed class MeasuredPinAgentTests
{
    private const string Entry = "entry0";

    private static AgentOptions SnpOptions(AgentHarness harness, FakeDeviceTree tree, byte[]? commandLinePin, LogSink log) =>
        harness.Options(new Uri($"https://127.0.0.1:{TestProcesses.FreePort()}"), commandLinePin, log) with
        {
            Tee = "snp",
            Devices = new DeviceRoots { ConfigFsTsm = tree.Root, ConfigFsTsmEntry = Entry, SevGuest = "/nonexistent" },
        };

    private static AgentOptions TdxOptions(AgentHarness harness, FakeDeviceTree tree, string mrConfigIdFile, LogSink log) =>
        harness.Options(new Uri($"https://127.0.0.1:{TestProcesses.FreePort()}"), null, log) with
        {
            Tee = "tdx",
            Devices = new DeviceRoots { ConfigFsTsm = tree.Root, ConfigFsTsmEntry = Entry, TdxGuest = "/nonexistent/tdx_guest", TdxMrConfigId = mrConfigIdFile },
        };

    [VectorFact]
    public async Task Tdx_AHostsQuoteWithItsOwnPin_NeverChoosesTheKms()
    {
        using var harness = new AgentHarness("tdx-pin");
        var hostsPin = RandomNumberGenerator.GetBytes(32);
        var quote = MeasuredPinTests.WithMrConfigId(TestVectors.Read("tdx", "trustee_emr_90c06f000000_v5_quote.bin"), [.. hostsPin, .. new byte[16]]);
        using var tree = MeasuredPinTests.ConfigFsTree("tdx_guest", quote, Entry);

        // The TD's own MRCONFIGID (the kernel's sysfs measurement) holds the real pin: that one is used.
        var pin = RandomNumberGenerator.GetBytes(32);
        var file = tree.Write("measurements/mrconfigid", [.. pin, .. new byte[16]]);
        var log = new LogSink();
        var code = await new Agent(TdxOptions(harness, tree, file, log), harness.LaunchConfig).RunAsync(default);
        Assert.Equal(AgentExitCodes.KmsUnavailable, code);
        var start = log.Text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!).Single(l => l["event"]!.GetValue<string>() == "start");
        Assert.Equal(Convert.ToHexStringLower(pin), start["kms_ca_sha256"]!.GetValue<string>());
        Assert.Equal($"TD report ({file}) TDX MRCONFIGID", start["kms_ca_pin_source"]!.GetValue<string>());
        Assert.DoesNotContain(Convert.ToHexStringLower(hostsPin), log.Text);

        // Without the TD's own report the agent refuses before the KMS rather than believe the quote.
        var refused = new LogSink();
        code = await new Agent(TdxOptions(harness, tree, "/nonexistent/mrconfigid", refused), harness.LaunchConfig).RunAsync(default);
        Assert.Equal(AgentExitCodes.Evidence, code);
        Assert.Contains("neither /nonexistent/mrconfigid nor /nonexistent/tdx_guest exists", refused.Text);
        Assert.DoesNotContain(Convert.ToHexStringLower(hostsPin), refused.Text);
        Assert.DoesNotContain("unreachable", refused.Text);
        Assert.False(File.Exists(harness.Marker));
    }

    [VectorFact]
    public async Task Snp_ZeroHostData_RefusesTheCommandLinePin_WithoutContactingTheKms()
    {
        using var harness = new AgentHarness("zero-host-data");
        using var tree = MeasuredPinTests.ConfigFsTree("sev_guest", TestVectors.Read("snp", "gosevguest_milan_v2_report.bin"), Entry);
        var log = new LogSink();

        var code = await new Agent(SnpOptions(harness, tree, RandomNumberGenerator.GetBytes(32), log), harness.LaunchConfig).RunAsync(default);

        Assert.Equal(AgentExitCodes.NoMeasuredPin, code);
        Assert.Contains("HOST_DATA is all zeros", log.Text);
        Assert.Contains("--allow-unmeasured-pin", log.Text);
        Assert.DoesNotContain("unreachable", log.Text);
        Assert.False(File.Exists(harness.Marker));
    }

    [VectorFact]
    public async Task Snp_ZeroHostData_AllowUnmeasured_UsesTheCommandLinePinLoudly()
    {
        using var harness = new AgentHarness("allowed");
        using var tree = MeasuredPinTests.ConfigFsTree("sev_guest", TestVectors.Read("snp", "gosevguest_milan_v2_report.bin"), Entry);
        var log = new LogSink();
        var pin = RandomNumberGenerator.GetBytes(32);

        // Past the pin the agent goes to the KMS, which is not there: exit 4 proves the pin was accepted.
        var code = await new Agent(SnpOptions(harness, tree, pin, log) with { AllowUnmeasuredPin = true }, harness.LaunchConfig).RunAsync(default);

        Assert.Equal(AgentExitCodes.KmsUnavailable, code);
        Assert.Contains("\"event\":\"unmeasured_pin\"", log.Text);
        Assert.Contains(Convert.ToHexStringLower(pin), log.Text);
        Assert.Contains("command line (unmeasured)", log.Text);
    }

    [Fact]
    public async Task Snp_HostDataPin_IsUsed_AndAContradictingCommandLinePinIsRefused()
    {
        using var harness = new AgentHarness("host-data");
        var pin = RandomNumberGenerator.GetBytes(32);
        using var tree = MeasuredPinTests.ConfigFsTree("sev_guest", MeasuredPinTests.SnpReportWithHostData(pin), Entry);

        var log = new LogSink();
        var code = await new Agent(SnpOptions(harness, tree, null, log), harness.LaunchConfig).RunAsync(default);
        Assert.Equal(AgentExitCodes.KmsUnavailable, code);
        var start = log.Text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!).Single(l => l["event"]!.GetValue<string>() == "start");
        Assert.Equal(Convert.ToHexStringLower(pin), start["kms_ca_sha256"]!.GetValue<string>());
        Assert.Equal("configfs-tsm SNP HOST_DATA", start["kms_ca_pin_source"]!.GetValue<string>());

        var contradicted = new LogSink();
        code = await new Agent(SnpOptions(harness, tree, RandomNumberGenerator.GetBytes(32), contradicted) with { AllowUnmeasuredPin = true }, harness.LaunchConfig).RunAsync(default);
        Assert.Equal(AgentExitCodes.Usage, code);
        Assert.Contains("differs from the measured one", contradicted.Text);
        Assert.DoesNotContain("unreachable", contradicted.Text);
        Assert.False(File.Exists(harness.Marker));
    }

    [Fact]
    public Task ColdStart_WithTheOnlyPinInSimulatedHostData() =>
        ColdStartPinnedAsync("measured", "simulated SNP HOST_DATA", (options, kms) =>
            options with { Simulated = options.Simulated with { HostData = kms.Pin } });

    [Fact]
    public Task ColdStart_WithThePinInKataInitdata_WhoseDigestIsTheSimulatedHostData() =>
        ColdStartPinnedAsync("kata", "Kata initdata (sha256) in SNP HOST_DATA", (options, kms) =>
        {
            var document = KataInitdataTests.Document(kms.Pin, function: "kata", kms: options.Kms.AbsoluteUri);
            var initdata = KataInitdata.Load("env:MORPH_INITDATA", name => name == "MORPH_INITDATA" ? KataInitdataTests.Annotation(document) : null);
            var hostData = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(document));
            return options with { Initdata = initdata, Simulated = options.Simulated with { HostData = hostData } };
        });

    /// <summary>
    /// A full cold start with no command-line pin: <paramref name="launch"/> puts the pin into the simulated launch;
    /// the agent must reach ready with its secret, name <paramref name="pinSource"/> and never fall back to an unmeasured pin.
    /// </summary>
    private static async Task ColdStartPinnedAsync(string function, string pinSource, Func<AgentOptions, AgentKms, AgentOptions> launch)
    {
        using var harness = new AgentHarness(function);
        await using var kms = await AgentKms.StartAsync(harness.SimDir);
        await kms.RegisterAsync(function, harness.Measurement);
        await kms.PutBundleAsync(function, new JsonObject { ["files"] = new JsonObject { ["greeting"] = $"pinned: {pinSource}" } });
        var log = new LogSink();
        var agent = new Agent(launch(harness.Options(kms.Server.BaseAddress!, null, log), kms), harness.LaunchConfig);
        using var stop = new CancellationTokenSource();
        var run = agent.RunAsync(stop.Token);
        await agent.Ready.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal($"pinned: {pinSource}", File.ReadAllText(Path.Combine(harness.SecretsDir, "greeting")));
        Assert.Contains(pinSource, log.Text);
        Assert.DoesNotContain("unmeasured_pin", log.Text);

        await stop.CancelAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Snp_InitdataThatIsNotTheMeasuredOne_IsRefused_WithoutContactingTheKms()
    {
        using var harness = new AgentHarness("kata-refused");
        var launched = KataInitdataTests.Document(RandomNumberGenerator.GetBytes(32), function: "kata-refused");
        var offered = KataInitdataTests.Document(RandomNumberGenerator.GetBytes(32), function: "kata-refused");
        using var tree = MeasuredPinTests.ConfigFsTree("sev_guest", MeasuredPinTests.SnpReportWithHostData(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(launched))), Entry);
        var log = new LogSink();
        var options = SnpOptions(harness, tree, null, log);
        options = options with { Initdata = KataInitdata.Parse(System.Text.Encoding.UTF8.GetBytes(offered.Replace("https://kms.morph.svc:8200/", options.Kms.AbsoluteUri, StringComparison.Ordinal))) };

        var code = await new Agent(options, harness.LaunchConfig).RunAsync(default);

        Assert.Equal(AgentExitCodes.Evidence, code);
        Assert.Contains("not the one this TEE was launched with", log.Text);
        Assert.DoesNotContain("unreachable", log.Text);
        Assert.False(File.Exists(harness.Marker));
    }
}
