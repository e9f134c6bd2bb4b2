using System.Text.Json.Nodes;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Kms;

namespace Morphisms.Agent.Tests.Secrets;

/// <summary>Where the KMS pin comes from (what it accepts: <c>Morphisms.Attestation.Tests.Trust.KmsPinTests</c>).</summary>
public sealed class PinTests
{
    private static readonly string Hex = new('a', 64);
    private static readonly string Other = new('b', 64);

    [Fact]
    public void CommandLinePin_HexOrCaFile_NotBoth()
    {
        Assert.Equal(Convert.FromHexString(Hex), AgentCli.CommandLinePin(null, Hex));
        Assert.Equal(Convert.FromHexString(Hex), AgentCli.CommandLinePin(null, string.Join(':', Hex.Chunk(2).Select(c => new string(c)))));
        Assert.Null(AgentCli.CommandLinePin(null, null));
        Assert.Equal(AgentExitCodes.Usage, Assert.Throws<AgentException>(() => AgentCli.CommandLinePin(null, "abc")).ExitCode);
        Assert.Equal(AgentExitCodes.Usage, Assert.Throws<AgentException>(() => AgentCli.CommandLinePin(new FileInfo("/nonexistent"), Hex)).ExitCode);
    }

    [Fact]
    public void MeasuredPinWins_AContradictingCommandLinePinIsAnError()
    {
        var measured = new MeasuredPin(Convert.FromHexString(Hex), "configfs-tsm SNP HOST_DATA");
        var warnings = new List<string>();
        Assert.Equal(measured.Sha256, PinResolver.Resolve(measured, null, false, warnings.Add).Pin);
        Assert.Equal(measured.Sha256, PinResolver.Resolve(measured, Convert.FromHexString(Hex), false, warnings.Add).Pin);

        // Even with --allow-unmeasured-pin: that flag covers a missing measured pin, never a different one.
        var e = Assert.Throws<AgentException>(() => PinResolver.Resolve(measured, Convert.FromHexString(Other), true, warnings.Add));
        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);
        Assert.Contains("differs from the measured one (configfs-tsm SNP HOST_DATA", e.Message);
        Assert.Empty(warnings);
    }

    [Fact]
    public void NoMeasuredPin_RefusesTheCommandLinePinUnlessAllowed_Loudly()
    {
        var none = new MeasuredPin(null, "configfs-tsm SNP HOST_DATA is all zeros");
        var commandLine = Convert.FromHexString(Hex);
        var warnings = new List<string>();

        var refused = Assert.Throws<AgentException>(() => PinResolver.Resolve(none, commandLine, false, warnings.Add));
        Assert.Equal(AgentExitCodes.NoMeasuredPin, refused.ExitCode);
        Assert.Contains("--allow-unmeasured-pin", refused.Message);
        Assert.Contains("all zeros", refused.Message);

        var (pin, source) = PinResolver.Resolve(none, commandLine, true, warnings.Add);
        Assert.Equal(commandLine, pin);
        Assert.Contains("unmeasured", source);
        Assert.Contains("UNMEASURED", Assert.Single(warnings));

        // The simulated TEE proves nothing about hardware, so its unmeasured pin needs no flag (but is still logged).
        Assert.Equal(commandLine, PinResolver.Resolve(none with { Simulated = true }, commandLine, false, warnings.Add).Pin);
        Assert.Equal(2, warnings.Count);

        Assert.Equal(AgentExitCodes.NoMeasuredPin, Assert.Throws<AgentException>(() => PinResolver.Resolve(none, null, true, warnings.Add)).ExitCode);
        Assert.Equal(AgentExitCodes.NoMeasuredPin, Assert.Throws<AgentException>(() => PinResolver.Resolve(none with { Simulated = true }, null, true, warnings.Add)).ExitCode);
    }

    [Fact]
    public void LoginResponse_SecretPathIsOptional_AndValidated()
    {
        static JsonObject Body(JsonNode? secretPath) => new()
        {
            ["auth"] = new JsonObject { ["client_token"] = "t", ["lease_duration"] = 30L, ["renewable"] = true },
            ["data"] = secretPath is null ? new JsonObject() : new JsonObject { ["secret_path"] = secretPath },
        };

        var options = new AgentOptions { Kms = new Uri("https://kms"), Function = "greeter", App = ["app"] };
        var without = LoginResult.Parse(Body(null));
        Assert.Null(without.SecretPath);
        Assert.Equal("secret/data/greeter", options.SecretPathFor(without));
        Assert.Null(LoginResult.Parse(new JsonObject { ["auth"] = new JsonObject { ["client_token"] = "t" } }).SecretPath);

        var named = LoginResult.Parse(Body("kv/data/teams/greeter"));
        Assert.Equal("kv/data/teams/greeter", named.SecretPath);
        Assert.Equal("kv/data/teams/greeter", options.SecretPathFor(named));

        // The command line is the host's: it fills in only where the KMS names nothing, and a different one is reported.
        var explicitPath = options with { SecretPath = "secret/data/explicit" };
        Assert.Equal("kv/data/teams/greeter", explicitPath.SecretPathFor(named));
        Assert.Contains("--secret-path secret/data/explicit is not the function's registered secret path; reading kv/data/teams/greeter", explicitPath.IgnoredSecretPath(named));
        Assert.Equal("secret/data/explicit", explicitPath.SecretPathFor(without));
        Assert.Null(explicitPath.IgnoredSecretPath(without));
        Assert.Null((options with { SecretPath = "kv/data/teams/greeter/" }).IgnoredSecretPath(named));
        Assert.Null(options.IgnoredSecretPath(named));

        foreach (var bad in new[] { "../sys/seal", "/secret/data/x", "secret/data/x?version=1", "secret//x", "single" })
        {
            // A malformed answer, as a mistyped field is: retried while running, exit 4 at a cold start.
            Assert.Contains("not a KV path", Assert.Throws<InvalidDataException>(() => LoginResult.Parse(Body(bad))).Message);
        }
    }
}
