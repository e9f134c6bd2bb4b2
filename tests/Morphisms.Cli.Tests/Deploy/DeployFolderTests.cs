using System.CommandLine;
using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using Morphisms.Cli.Tests.Up;

namespace Morphisms.Cli.Tests.Deploy;

/// <summary>
/// The repository's <c>deploy/</c> folder stays true to the code: the committed Kubernetes examples are byte for byte
/// what <c>deploy/regenerate.sh</c> makes with today's <c>morph export</c>, and the systemd unit's command line (after
/// systemd's expansion, with the example environment file) is one the real <c>morph</c> parses, production-style and
/// without a secret on it.
/// </summary>
public sealed partial class DeployFolderTests
{
    /// <summary>The unit and each variant of it, as installed: the unit alone (SQLite), or with the PostgreSQL drop-in.</summary>
    public static TheoryData<string[]> Variants => new()
    {
        { ["morph-kms.service"] },
        { ["morph-kms.service", "morph-kms.service.d/postgres.conf"] },
    };

    /// <summary>Where systemd puts things for a system service named morph-kms.service (systemd.unit(5), "Specifiers").</summary>
    public static IReadOnlyDictionary<char, string> SystemSpecifiers { get; } = new Dictionary<char, string>
    {
        ['d'] = "/run/credentials/morph-kms.service",
        ['S'] = "/var/lib",
        ['L'] = "/var/log",
        ['C'] = "/var/cache",
        ['t'] = "/run",
        ['E'] = "/etc",
        ['n'] = "morph-kms.service",
        ['N'] = "morph-kms",
        ['p'] = "morph-kms",
    };

    public static string RepositoryRoot => typeof(DeployFolderTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepositoryRoot").Value!;

    public static string SystemdDirectory => Path.Combine(RepositoryRoot, "deploy", "systemd");

    [Fact]
    public async Task Kubernetes_examples_are_what_morph_export_writes_now()
    {
        var work = Directory.CreateTempSubdirectory("morph-deploy-");
        try
        {
            // regenerate.sh runs $MORPH: the morph this test project built, whatever the artifacts path.
            var wrapper = Path.Combine(work.FullName, "morph");
            await File.WriteAllTextAsync(wrapper, $"#!/bin/sh\nexec {ShellQuote(TestProcesses.DotnetHost)} {ShellQuote(MorphProcess.MorphDll)} \"$@\"\n");
            File.SetUnixFileMode(wrapper, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var generated = Path.Combine(work.FullName, "kubernetes");
            var (code, output) = await RunAsync("bash", [Path.Combine(RepositoryRoot, "deploy", "regenerate.sh"), generated], new() { ["MORPH"] = wrapper, ["MORPHISMS_HOME"] = work.FullName });
            Assert.True(code == 0, $"deploy/regenerate.sh failed ({code}):\n{output}");

            var committed = Path.Combine(RepositoryRoot, "deploy", "kubernetes");
            var expected = Files(generated);
            var actual = Files(committed);
            const string fix = "run `bash deploy/regenerate.sh` and commit deploy/kubernetes/";
            Assert.True(expected.SequenceEqual(actual),
                $"deploy/kubernetes/ holds [{string.Join(", ", actual)}] but `morph export` writes [{string.Join(", ", expected)}]: {fix}");
            foreach (var file in expected)
            {
                var want = await File.ReadAllBytesAsync(Path.Combine(generated, file));
                var have = await File.ReadAllBytesAsync(Path.Combine(committed, file));
                Assert.True(want.SequenceEqual(have), $"deploy/kubernetes/{file} differs from what `morph export` writes now: {fix}");
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Unit_command_line_parses_with_morph_as_a_production_kms(string[] files)
    {
        var (unit, argv) = Expand(files);
        Assert.Equal("/opt/morphisms/morph", argv[0]);

        // Exactly as `morph` parses its arguments (MorphCli.RunAsync): a renamed or removed flag is an error here.
        var parsed = MorphCli.CreateRootCommand(TextWriter.Null, TextWriter.Null).Parse(argv.Skip(1).ToArray(), new ParserConfiguration { ResponseFileTokenReplacer = null });
        Assert.True(parsed.Errors.Count == 0,
            $"{string.Join(" + ", files)}: morph does not parse [{string.Join(' ', argv)}]: {string.Join("; ", parsed.Errors.Select(e => e.Message))}");
        Assert.Equal("morph kms server", string.Join(' ', CommandPath(parsed.CommandResult)));

        // Production-style: the Shamir seal, TLS from files, storage that outlives the process.
        string? Value(string option) => parsed.CommandResult.Children.OfType<System.CommandLine.Parsing.OptionResult>()
            .SingleOrDefault(o => o.Option.Name == option)?.Tokens.SingleOrDefault()?.Value;
        Assert.DoesNotContain("--dev", argv);
        Assert.DoesNotContain("--tls-self", argv);
        Assert.DoesNotContain("--trust-simulated-tee", argv);
        Assert.Contains(Value("--seal"), new string?[] { null, "shamir" });
        Assert.Matches("^(sqlite:/var/lib/morphisms-kms/|postgres:file=/run/credentials/morph-kms.service/)", Value("--storage"));
        Assert.StartsWith("/run/credentials/morph-kms.service/", Value("--tls-cert"), StringComparison.Ordinal);
        Assert.StartsWith("/run/credentials/morph-kms.service/", Value("--tls-key"), StringComparison.Ordinal);

        // Every credential the command line reads is one the unit loads (a renamed credential would be a missing file).
        var loaded = unit.Values("LoadCredential").Select(c => c[..c.IndexOf(':', StringComparison.Ordinal)]).ToHashSet(StringComparer.Ordinal);
        foreach (var credential in argv.SelectMany(a => CredentialPath().Matches(a)).Select(m => m.Groups[1].Value))
        {
            Assert.True(loaded.Contains(credential), $"{string.Join(" + ", files)}: the command line reads credential '{credential}', which no LoadCredential= loads");
        }

        // The directories it writes are the ones systemd makes for it under ProtectSystem=strict.
        Assert.Equal(["morphisms-kms"], unit.Values("StateDirectory"));
        Assert.Equal(["morphisms-kms"], unit.Values("LogsDirectory"));
        Assert.Equal("/var/lib/morphisms-kms", unit.Environment(SystemSpecifiers)["MORPHISMS_HOME"]);
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Unit_puts_no_secret_on_the_command_line_or_in_the_unit(string[] files)
    {
        var (unit, argv) = Expand(files);
        var secretLooking = SecretLooking();

        // The command line: every user of the host reads it in /proc/PID/cmdline.
        foreach (var arg in argv)
        {
            Assert.False(secretLooking.IsMatch(arg), $"{string.Join(" + ", files)}: the command line carries what looks like a secret: '{arg}'");
            Assert.False(arg.StartsWith("--token", StringComparison.Ordinal) || arg.StartsWith("--pkcs11-pin=", StringComparison.Ordinal), $"{string.Join(" + ", files)}: '{arg}' on the command line");
        }

        // The unit files are world-readable and `systemctl show` prints Environment=: no secret there either.
        foreach (var (key, value) in new[] { "ExecStart", "Environment" }.SelectMany(k => unit.Values(k).Select(v => (k, v))))
        {
            Assert.False(secretLooking.IsMatch(value), $"{string.Join(" + ", files)}: {key}={value} looks like it carries a secret");
        }

        Assert.DoesNotContain(unit.Environment(SystemSpecifiers).Keys, name => name == Morphisms.Kms.Storage.PostgresStorage.ConnectionStringVariable);

        // The example environment file holds settings only: secrets come as credentials, from their own 0600 files.
        foreach (var (name, value) in SystemdUnit.ReadEnvironmentFile(Path.Combine(SystemdDirectory, "kms.env.example")))
        {
            Assert.NotEqual(Morphisms.Kms.Storage.PostgresStorage.ConnectionStringVariable, name);
            Assert.False(secretLooking.IsMatch(value), $"kms.env.example: {name}={value} looks like it carries a secret");
        }

        // The TLS key and the PostgreSQL connection string are read from the credentials directory, never from a path
        // the service would need read access to under /etc.
        Assert.All(unit.Values("LoadCredential"), c => Assert.Matches(@"^[a-z0-9.-]+:/etc/morphisms/kms/[a-z0-9.-]+$", c));
    }

    /// <summary>The unit (and drop-ins) of <paramref name="files"/> with its ExecStart expanded for the example environment file.</summary>
    public static (SystemdUnit Unit, IReadOnlyList<string> Argv) Expand(string[] files, IReadOnlyDictionary<char, string>? specifiers = null, IReadOnlyDictionary<string, string>? overrides = null)
    {
        var unit = SystemdUnit.Load(Path.Combine(SystemdDirectory, files[0]), [.. files.Skip(1).Select(f => Path.Combine(SystemdDirectory, f))]);
        // The README installs kms.env.example as this file.
        Assert.Equal(["/etc/morphisms/kms.env"], unit.Values("EnvironmentFile"));
        var environment = SystemdUnit.ReadEnvironmentFile(Path.Combine(SystemdDirectory, "kms.env.example"));
        foreach (var (name, value) in unit.Environment(specifiers ?? SystemSpecifiers).Concat(overrides ?? new Dictionary<string, string>()))
        {
            environment[name] = value;
        }

        return (unit, unit.ExpandExecStart(specifiers ?? SystemSpecifiers, environment));
    }

    private static IEnumerable<string> CommandPath(System.CommandLine.Parsing.CommandResult? result)
    {
        var names = new Stack<string>();
        for (; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            names.Push(result.Command is RootCommand ? "morph" : result.Command.Name);
        }

        return names;
    }

    private static List<string> Files(string directory) =>
        [.. Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(directory, f)).Order(StringComparer.Ordinal)];

    private static string ShellQuote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static async Task<(int Code, string Output)> RunAsync(string program, string[] args, Dictionary<string, string> environment)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        args.ToList().ForEach(info.ArgumentList.Add);
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    [GeneratedRegex(@"/run/credentials/morph-kms\.service/([^/\s]+)")]
    private static partial Regex CredentialPath();

    /// <summary>A password or connection string (Npgsql keywords, a URL with userinfo), a token, a PIN.</summary>
    [GeneratedRegex(@"(?i)password|passwd|\bpwd\b|\b(host|server|username|user id)\s*=|://[^/\s]*@|--token\b|--pkcs11-pin\b(?!-(file|env))|\bhvs\.[A-Za-z0-9]{20,}")]
    private static partial Regex SecretLooking();
}
