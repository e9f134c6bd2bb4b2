using Morphisms.Cli;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary><c>morph deploy|ls|revisions|traffic|logs|rm</c> in-process against a live host's control API.</summary>
public sealed class ControlCliTests
{
    [Fact]
    public async Task TheServingCommands_DriveTheHostThroughTheControlApi()
    {
        using var functions = new TestFunctions();
        var launcher = new FakeLauncher();
        await using var host = await functions.HostAsync(GatewayMode.Http, launcher: launcher);
        var dir = Directory.CreateTempSubdirectory("morph-cli-fn-").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "bundle"));
        await File.WriteAllTextAsync(Path.Combine(dir, "function.yaml"), """
            name: echo
            tee: none
            bundle: bundle
            command: ["dotnet", "app.dll"]
            env: { REV: "1" }
            scale: { min: 1 }
            """);
        var control = host.ControlUrl.ToString();
        var tokenFile = functions.ControlTokenFile;

        var (code, output) = await Morph("deploy", dir, "--control", control, "--control-token-file", tokenFile);
        Assert.True(code == 0, output);
        Assert.Contains("echo: revision echo-00001 created", output);
        Assert.Contains("echo.fn.morphisms.local", output);
        Assert.Contains("traffic      routed at once (the function's first route)", output);

        await File.WriteAllTextAsync(Path.Combine(dir, "function.yaml"), (await File.ReadAllTextAsync(Path.Combine(dir, "function.yaml"))).Replace("REV: \"1\"", "REV: \"2\"", StringComparison.Ordinal));
        (code, output) = await Morph("deploy", dir, "--control", control, "--control-token-file", tokenFile);
        Assert.Contains("echo-00002 created", output);
        Assert.Contains("traffic      routed", output); // the fake instance is ready as it starts: at once, or after it

        (code, output) = await Morph("traffic", "echo", "echo-00001=80", "echo-00002=20", "--tag", "echo-00002=canary", "--control", control, "--control-token-file", tokenFile);
        Assert.True(code == 0, output);
        Assert.Contains("canary-echo.fn.morphisms.local", output);

        (code, output) = await Morph("ls", "--control", control, "--control-token-file", tokenFile);
        Assert.Contains("echo-00001", output);
        Assert.Contains("80%", output);

        (code, output) = await Morph("revisions", "echo", "--control", control, "--control-token-file", tokenFile);
        Assert.Contains("echo-00002", output);
        Assert.Contains("canary", output);

        (code, output) = await Morph("traffic", "echo", "echo-00001=50", "--control", control, "--control-token-file", tokenFile);
        Assert.Equal(ExitCodes.UsageOrInput, code); // the API's 400: the input's fault
        Assert.Contains("sum to 50", output);

        (code, output) = await Morph("logs", "echo", "--control", control, "--control-token-file", tokenFile);
        Assert.True(code == 0, output);
        Assert.Contains("starting", output);

        using var scraper = TestFunctions.ControlClient(host);
        var metrics = await scraper.GetStringAsync("metrics");
        Assert.Contains("morph_revision_instances{function=\"echo\",revision=\"echo-00001\",state=\"ready\"} 1", metrics);
        Assert.Contains("morph_cold_start_phase_seconds_count{function=\"echo\",revision=\"echo-00001\",phase=\"attestation\"} 2", metrics); // started, stopped by the 100 % deploy of 00002, started again by the split

        (code, output) = await Morph("rm", "echo", "--control", control, "--control-token-file", tokenFile);
        Assert.True(code == 0, output);
        Assert.Empty(host.List());
        Assert.All(launcher.Launched, i => Assert.True(i.Stopped));
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task Rm_WhoseKmsRegistrationWasNotDeleted_SaysSoAndExits1()
    {
        // The host registers nothing for a hardware TEE but deletes its registration on rm: the DELETE finds no KMS here.
        using var functions = new TestFunctions();
        var unreachable = new KmsConnection { Url = new Uri("https://127.0.0.1:1/"), CaSha256 = new string('0', 64), Token = "unused" };
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms: unreachable, launcher: new FakeLauncher());
        await host.DeployAsync(functions.Spec("vault", "a", FunctionTee.Snp), CancellationToken.None);
        var control = host.ControlUrl.ToString();

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await MorphCli.RunAsync(["rm", "vault", "--control", control, "--control-token-file", functions.ControlTokenFile], stdout, stderr);

        // Gone from the host, but its instances elsewhere may still log in: the command says so, and what to run.
        Assert.Equal(ExitCodes.Rejected, code);
        Assert.Empty(host.List());
        Assert.Contains("its KMS registration was not deleted", stderr.ToString(), StringComparison.Ordinal);
        Assert.Contains("morph kms function delete vault", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("removed vault", stdout.ToString(), StringComparison.Ordinal);

        // The control API's reply carries the failure for other clients.
        await host.DeployAsync(functions.Spec("vault", "b", FunctionTee.Snp), CancellationToken.None);
        using var client = TestFunctions.ControlClient(host);
        using var reply = await client.DeleteAsync("v1/functions/vault");
        Assert.Equal(System.Net.HttpStatusCode.OK, reply.StatusCode);
        var body = System.Text.Json.Nodes.JsonNode.Parse(await reply.Content.ReadAsStringAsync())!;
        Assert.Equal("vault", body["removed"]!.GetValue<string>());
        Assert.Contains("KMS", body["kms_error"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deploy_OfInputTheHostRefuses_Exits2_NamingTheField_AndAFailingKms_Exits1()
    {
        using var functions = new TestFunctions();
        var unreachable = new KmsConnection { Url = new Uri("https://127.0.0.1:1/"), CaSha256 = new string('0', 64), Token = "unused" };
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms: unreachable, launcher: new FakeLauncher());
        var control = host.ControlUrl.ToString();
        var dir = Directory.CreateTempSubdirectory("morph-cli-fn-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "bundle"));
            var spec = """
                name: echo
                tee: sim
                bundle: bundle
                command: ["dotnet", "app.dll"]
                port: eighty
                """;
            await File.WriteAllTextAsync(Path.Combine(dir, "function.yaml"), spec);

            var (code, output) = await Morph("deploy", dir, "--control", control, "--control-token-file", functions.ControlTokenFile);
            Assert.Equal(ExitCodes.UsageOrInput, code);
            Assert.Equal("morph: line 5: port: expected an integer 1–65535, got 'eighty'", output.Trim());

            // The bundle not built: the message says so.
            await File.WriteAllTextAsync(Path.Combine(dir, "function.yaml"), spec.Replace("port: eighty", "port: 8080", StringComparison.Ordinal).Replace("bundle: bundle", "bundle: publish", StringComparison.Ordinal));
            (code, output) = await Morph("deploy", dir, "--control", control, "--control-token-file", functions.ControlTokenFile);
            Assert.Equal(ExitCodes.UsageOrInput, code);
            Assert.Contains($"bundle: directory not found: {Path.Combine(dir, "publish")} (build the function first", output, StringComparison.Ordinal);

            // No spec there at all.
            (code, output) = await Morph("deploy", Path.Combine(dir, "nonexistent"), "--control", control, "--control-token-file", functions.ControlTokenFile);
            Assert.Equal(ExitCodes.UsageOrInput, code);
            Assert.Equal($"morph: no function spec at {Path.Combine(dir, "nonexistent")}", output.Trim());

            // A valid spec the KMS cannot register is the KMS's failure, not the input's: 502, exit 1.
            await File.WriteAllTextAsync(Path.Combine(dir, "function.yaml"), spec.Replace("port: eighty", "port: 8080", StringComparison.Ordinal));
            (code, output) = await Morph("deploy", dir, "--control", control, "--control-token-file", functions.ControlTokenFile);
            Assert.Equal(ExitCodes.Rejected, code);
            Assert.StartsWith("morph: 502: KMS registration failed", output.Trim(), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(int Code, string Output)> Morph(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await MorphCli.RunAsync(args, stdout, stderr);
        return (code, stdout.ToString() + stderr);
    }
}
