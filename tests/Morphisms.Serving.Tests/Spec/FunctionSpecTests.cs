using Morphisms.Serving.Revisions;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Spec;

public sealed class FunctionSpecTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-spec-").FullName;

    private const string Valid = """
        name: signer
        tee: sim
        bundle: ./bundle
        command: ["./signer", "--listen", "127.0.0.1:8080"]
        port: 8080
        env:
          LOG_LEVEL: info
        secrets: secret/data/signer
        scale:
          min: 0
          max: 10
          initial: 1
          target: 50
          containerConcurrency: 100
          stableWindow: 30s
          scaleToZeroGracePeriod: 500ms
          warmPool: 2
        traffic:
          - revision: latest
            percent: 100
            tag: current
        """;

    public FunctionSpecTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "bundle"));
        File.WriteAllText(Path.Combine(_dir, "bundle", "signer"), "#!/bin/sh\necho hi\n");
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_valid_spec_parses_with_every_field()
    {
        File.WriteAllText(Path.Combine(_dir, FunctionSpecLoader.FileName), Valid);
        var spec = FunctionSpecLoader.Load(_dir);
        Assert.Equal("signer", spec.Name);
        Assert.Equal(FunctionTee.Sim, spec.Tee);
        Assert.Equal(Path.Combine(_dir, "bundle"), spec.Bundle);
        Assert.Equal(["./signer", "--listen", "127.0.0.1:8080"], spec.Command);
        Assert.Equal("info", spec.Env["LOG_LEVEL"]);
        Assert.Equal("secret/data/signer", spec.Secrets);
        Assert.Equal(TimeSpan.FromSeconds(30), spec.Scale.StableWindow);
        Assert.Equal(TimeSpan.FromMilliseconds(500), spec.Scale.ScaleToZeroGracePeriod);
        Assert.Equal(2, spec.Scale.WarmPool);
        Assert.Equal(new TrafficSpec("latest", 100, "current"), Assert.Single(spec.Traffic));
    }

    [Theory]
    [InlineData("name: signer", "name: Signer_1", "name: 'Signer_1' is not a DNS label")]
    [InlineData("tee: sim", "tee: tpm", "tee: 'tpm' is not one of")]
    [InlineData("port: 8080", "port: 70000", "port: 70000 is not a TCP port")]
    [InlineData("  min: 0", "  min: -1", "scale.min: must not be negative")]
    [InlineData("  stableWindow: 30s", "  stableWindow: soon", "scale.stableWindow: 'soon' is not a duration")]
    [InlineData("  stableWindow: 30s", "  stableWindow: 5s", "scale.stableWindow: '5s' is not between 6s and 1h")]
    [InlineData("  stableWindow: 30s", "  stableWindow: 61m", "scale.stableWindow: '61m' is not between 6s and 1h")]
    [InlineData("  stableWindow: 30s", "  stableWindow: 1e400s", "scale.stableWindow: '1e400s' is not a duration")]
    [InlineData("  stableWindow: 30s", "  stableWindow: Infinitys", "scale.stableWindow: 'Infinitys' is not a duration")]
    [InlineData("  scaleToZeroGracePeriod: 500ms", "  scaleToZeroGracePeriod: 1e15h", "scale.scaleToZeroGracePeriod: '1e15h' is not a duration")]
    [InlineData("  scaleToZeroGracePeriod: 500ms", "  scaleToZeroGracePeriod: 2h", "scale.scaleToZeroGracePeriod: '2h' is not between 0s and 1h")]
    [InlineData("  target: 50", "  target: .inf", "scale.target: must be a positive number")]
    [InlineData("  target: 50", "  target: .nan", "scale.target: must be a positive number")]
    [InlineData("  min: 0", "  min: 0\n  targetUtilization: .nan", "scale.targetUtilization: must be in (0, 1]")]
    [InlineData("secrets: secret/data/signer", "secrets: secret/signer", "secrets: 'secret/signer' is not a KV v2 data path")]
    [InlineData("  LOG_LEVEL: info", "  LOG-LEVEL: info", "env: 'LOG-LEVEL' is not a valid variable name")]
    [InlineData("bundle: ./bundle", "bundle: ./missing", "bundle: directory not found")]
    [InlineData("  max: 10", "  max: 10\n  maxx: 3", "line 12: unknown field 'maxx'")]
    [InlineData("    percent: 100", "    percent: lots", "line 20")]
    public void Invalid_specs_name_the_field(string original, string replacement, string expected)
    {
        var error = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse(Valid.Replace(original, replacement, StringComparison.Ordinal), _dir));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("'secret/data/x\" { capabilities = [\"read\"] } path \"sys/*'")]
    [InlineData("'secret/data/x\" {capabilities=[\"read\",\"update\"]}'")]
    [InlineData("'secret/data/*'")]
    [InlineData("'secret/data/+/x'")]
    [InlineData("'secret/data/x*'")]
    [InlineData("secret/data/../../sys/policies/acl")]
    [InlineData("secret/data/./x")]
    [InlineData("'secret/data/a b'")]
    [InlineData("'secret/data/x}'")]
    [InlineData("\"secret/data/x\\npath\"")]
    [InlineData("/secret/data/x")]
    [InlineData("secret/data/x/")]
    [InlineData("secret//data/x")]
    [InlineData("secret/data/")]
    [InlineData("secret/data")]
    [InlineData("secret/meta/x")]
    [InlineData("secret/data/caf\u00e9")]
    public void Secret_paths_that_could_inject_policy_rules_are_refused(string yamlValue)
    {
        var error = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse(
            Valid.Replace("secrets: secret/data/signer", "secrets: " + yamlValue, StringComparison.Ordinal), _dir));
        Assert.StartsWith("secrets: ", error.Message, StringComparison.Ordinal);
        Assert.Contains("is not a KV v2 data path MOUNT/data/PATH", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("secret/data/signer")]
    [InlineData("kv-2/data/team_a/signer.v1")]
    [InlineData("secret/data/a/b/c")]
    public void Plain_kv_v2_data_paths_are_accepted(string path)
    {
        var spec = FunctionSpecLoader.Parse(Valid.Replace("secrets: secret/data/signer", "secrets: " + path, StringComparison.Ordinal), _dir);
        Assert.Equal(path, spec.Secrets);
        Assert.True(KvSecretPath.IsValid(path));
    }

    [Fact]
    public void A_new_revision_comes_with_a_change_of_code_launch_config_or_scale_but_not_traffic()
    {
        var history = new RevisionHistory("signer");
        var now = DateTimeOffset.UnixEpoch;
        var spec = FunctionSpecLoader.Parse(Valid, _dir);
        var (first, created) = history.Apply(spec, now);
        Assert.True(created);
        Assert.Equal("signer-00001", first.Name);
        Assert.Equal(96, first.Measurement.Length);

        Assert.False(history.Apply(spec with { Traffic = [new TrafficSpec("signer-00001", 100, null)] }, now).Created);

        var envChanged = history.Apply(spec with { Env = new Dictionary<string, string> { ["LOG_LEVEL"] = "debug" } }, now).Revision;
        Assert.Equal("signer-00002", envChanged.Name);
        Assert.NotEqual(first.Measurement, envChanged.Measurement);

        File.AppendAllText(Path.Combine(_dir, "bundle", "signer"), "#");
        var codeChanged = history.Apply(spec with { Env = envChanged.Spec.Env }, now).Revision;
        Assert.Equal("signer-00003", codeChanged.Name);
        Assert.NotEqual(envChanged.Measurement, codeChanged.Measurement);

        var scaled = history.Apply(codeChanged.Spec with { Scale = codeChanged.Spec.Scale with { Max = 20 } }, now).Revision;
        Assert.Equal("signer-00004", scaled.Name);
        Assert.Equal(codeChanged.Measurement, scaled.Measurement); // scale does not change what runs
        Assert.Equal(4, history.Revisions.Count);
    }

    [Fact]
    public void Sgx_revisions_get_a_32_byte_mrenclave()
    {
        var spec = FunctionSpecLoader.Parse(Valid.Replace("tee: sim", "tee: sgx", StringComparison.Ordinal), _dir);
        Assert.Equal(64, new RevisionHistory("signer").Apply(spec, DateTimeOffset.UnixEpoch).Revision.Measurement.Length);
    }
}
