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

    // YamlDotNet's own messages name .NET types and parse errors ("The input string 'eighty' was not in a correct
    // format."); the loader names the field, what it takes and what it got, and keeps the line.
    [Theory]
    [InlineData("port: 8080", "port: eighty", "line 5: port: expected an integer 1–65535, got 'eighty'")]
    [InlineData("port: 8080", "port: 99999999999", "line 5: port: expected an integer 1–65535, got '99999999999'")]
    [InlineData("port: 8080", "port: 80.5", "line 5: port: expected an integer 1–65535, got '80.5'")]
    [InlineData("command: [\"./signer\", \"--listen\", \"127.0.0.1:8080\"]", "command: ./signer", "line 4: command: expected a list of strings (the program and its arguments), got './signer'")]
    [InlineData("  LOG_LEVEL: info", "  LOG_LEVEL: [info]", "line 7: env.LOG_LEVEL: expected a string, got a list")]
    [InlineData("  min: 0", "  min: two", "line 10: scale.min: expected a whole number, 0 or more, got 'two'")]
    [InlineData("  target: 50", "  target: high", "line 13: scale.target: expected a positive number, got 'high'")]
    [InlineData("    percent: 100", "    percent: lots", "line 20: traffic[0].percent: expected a whole number 0–100, got 'lots'")]
    [InlineData("name: signer", "name: [signer]", "line 1: name: expected a DNS label (lowercase letters, digits, '-'), got a list")]
    [InlineData("scale:\n  min: 0", "scale: 5\nx:\n  min: 0", "line 9: scale: expected a mapping (min, max, initial, target, …), got '5'")]
    [InlineData("command: [\"./signer\", \"--listen\", \"127.0.0.1:8080\"]", "command: ./signer --listen: 8080", "line 4: not valid YAML (quote a value that holds ': '):")]
    public void Values_of_the_wrong_type_name_the_field_and_what_it_takes(string original, string replacement, string expected)
    {
        var error = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse(Valid.Replace(original, replacement, StringComparison.Ordinal), _dir));
        Assert.StartsWith(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_value_nested_a_hundred_thousand_deep_is_named_without_overflowing_the_stack()
    {
        // Finding the field walks the parser's events with a stack of its own: a node tree is built recursively.
        var deep = Valid.Replace("port: 8080", "port: " + new string('[', 100_000) + new string(']', 100_000), StringComparison.Ordinal);
        var error = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse(deep, _dir));
        Assert.Equal("line 5: port: expected an integer 1–65535, got a list", error.Message);

        Assert.Equal("line 1: the spec: expected a mapping of the spec's fields (name, bundle, command, …), got 'hello'",
            Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse("hello", _dir)).Message);
    }

    [Fact]
    public void A_missing_bundle_says_to_build_the_function_and_in_the_samples_how()
    {
        var generic = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse(Valid.Replace("./bundle", "./publish", StringComparison.Ordinal), _dir));
        Assert.Equal($"bundle: directory not found: {Path.Combine(_dir, "publish")} (build the function first: bundle names its build output)", generic.Message);

        // A sample of this repository: samples/NAME/function.yaml beside samples/build.sh, which builds them all.
        var samples = Directory.CreateDirectory(Path.Combine(_dir, "samples")).FullName;
        var sample = Directory.CreateDirectory(Path.Combine(samples, "signer")).FullName;
        File.WriteAllText(Path.Combine(samples, "build.sh"), "#!/bin/sh\n");
        File.WriteAllText(Path.Combine(sample, FunctionSpecLoader.FileName), Valid.Replace("./bundle", "./publish", StringComparison.Ordinal));
        var inSamples = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Load(sample));
        Assert.Equal($"bundle: directory not found: {Path.Combine(sample, "publish")} (build it first: bash {Path.Combine(samples, "build.sh")})", inSamples.Message);
    }

    [Fact]
    public void A_symlinked_bundle_is_the_directory_it_leads_to()
    {
        // As `bundle: ./publish` with publish -> a build output elsewhere: what is measured, bound into the sandbox and
        // run must be one directory, and the sandbox binds real paths only.
        var output = Directory.CreateDirectory(Path.Combine(_dir, "out", "Release")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(_dir, "publish"), output);
        File.WriteAllText(Path.Combine(_dir, FunctionSpecLoader.FileName), Valid.Replace("./bundle", "./publish", StringComparison.Ordinal));

        Assert.Equal(output, FunctionSpecLoader.Load(_dir).Bundle);
    }

    // Measuring follows symlinks, at deploy on the host and at launch inside the sandbox, which shows only the bundle.
    [Theory]
    [InlineData("file", "../../secret.txt", "is a symlink to ../../secret.txt, outside the bundle")]
    [InlineData("dir", "../../elsewhere", "is a symlink to ../../elsewhere, outside the bundle")]
    [InlineData("file", "/etc/hostname", "is a symlink to /etc/hostname, outside the bundle")]
    [InlineData("file", "missing", "is a symlink to missing, which does not exist")]
    [InlineData("dir", ".", "leads round to itself")]
    [InlineData("dir", "..", "leads round to itself")]
    public void Bundle_symlinks_that_lead_out_of_it_or_round_are_refused(string kind, string target, string expected)
    {
        File.WriteAllText(Path.Combine(_dir, "secret.txt"), "not the function's");
        Directory.CreateDirectory(Path.Combine(_dir, "elsewhere"));
        var sub = Directory.CreateDirectory(Path.Combine(_dir, "bundle", "lib")).FullName;
        var link = Path.Combine(sub, "link");
        if (kind == "dir")
        {
            Directory.CreateSymbolicLink(link, target);
        }
        else
        {
            File.CreateSymbolicLink(link, target);
        }

        var error = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse(Valid, _dir));
        Assert.StartsWith($"bundle: {link} ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Directory_links_that_lead_round_through_each_other_are_refused()
    {
        var bundle = Path.Combine(_dir, "bundle");
        Directory.CreateDirectory(Path.Combine(bundle, "a"));
        Directory.CreateDirectory(Path.Combine(bundle, "b"));
        Directory.CreateSymbolicLink(Path.Combine(bundle, "a", "to-b"), "../b");
        Directory.CreateSymbolicLink(Path.Combine(bundle, "b", "to-a"), "../a");

        var error = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Parse(Valid, _dir));
        Assert.Contains("leads round to itself", error.Message, StringComparison.Ordinal);

        // One way only is a plain alias.
        File.Delete(Path.Combine(bundle, "b", "to-a"));
        Assert.Equal(bundle, FunctionSpecLoader.Parse(Valid, _dir).Bundle);
    }

    [Fact]
    public void A_symlink_through_the_symlinked_bundle_path_is_refused_though_it_leads_back_in()
    {
        // The sandbox binds the real directory only: /…/publish/signer does not exist in it.
        var output = Directory.CreateDirectory(Path.Combine(_dir, "out")).FullName;
        File.WriteAllText(Path.Combine(output, "signer"), "#!/bin/sh\n");
        Directory.CreateSymbolicLink(Path.Combine(_dir, "publish"), output);
        File.CreateSymbolicLink(Path.Combine(output, "alias"), Path.Combine(_dir, "publish", "signer"));
        File.WriteAllText(Path.Combine(_dir, FunctionSpecLoader.FileName), Valid.Replace("./bundle", "./publish", StringComparison.Ordinal));

        var error = Assert.Throws<FunctionSpecException>(() => FunctionSpecLoader.Load(_dir));
        Assert.StartsWith($"bundle: {Path.Combine(output, "alias")} is a symlink to {Path.Combine(_dir, "publish", "signer")}, outside the bundle", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Symlinks_within_the_bundle_are_kept_and_measured_as_their_targets()
    {
        var bundle = Path.Combine(_dir, "bundle");
        Directory.CreateDirectory(Path.Combine(bundle, "lib", "x"));
        File.WriteAllText(Path.Combine(bundle, "lib", "x", "libfoo.so.1"), "code");
        File.CreateSymbolicLink(Path.Combine(bundle, "lib", "x", "libfoo.so"), "libfoo.so.1");
        Directory.CreateSymbolicLink(Path.Combine(bundle, "lib64"), "lib");
        File.CreateSymbolicLink(Path.Combine(bundle, "run"), Path.Combine(bundle, "signer"));
        var spec = FunctionSpecLoader.Parse(Valid, _dir);
        var before = new RevisionHistory("signer").Apply(spec, DateTimeOffset.UnixEpoch).Revision.Measurement;

        File.WriteAllText(Path.Combine(bundle, "lib", "x", "libfoo.so.1"), "other code");
        Assert.NotEqual(before, new RevisionHistory("signer").Apply(spec, DateTimeOffset.UnixEpoch).Revision.Measurement);
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
