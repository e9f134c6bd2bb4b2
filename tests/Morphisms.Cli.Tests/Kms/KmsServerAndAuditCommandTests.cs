using System.Collections.Concurrent;
using System.CommandLine;
using System.Text;
using Morphisms.Attestation.Simulated;
using Morphisms.Cli.Commands.Kms;

namespace Morphisms.Cli.Tests.Kms;

public class KmsServerAndAuditCommandTests
{
    [Fact]
    public async Task Server_runs_in_dev_mode_trusting_the_given_simulated_tee_until_cancelled()
    {
        var dir = Directory.CreateTempSubdirectory("morph-kms-server-").FullName;
        try
        {
            SimulatedTeeAuthority.LoadOrCreate(dir, TimeProvider.System).Dispose();
            var stdout = new LineWriter();
            using var stderr = new StringWriter();
            var root = new RootCommand { KmsCommand.Create(stdout, stderr) };
            using var cts = new CancellationTokenSource();
            var run = root.Parse(["kms", "server", "--dev", "--listen", "127.0.0.1:0", "--trust-simulated-tee", dir])
                .InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr }, cts.Token);

            var listening = await stdout.WaitForAsync("listening ", TimeSpan.FromSeconds(60));
            var address = listening["listening ".Length..];
            // In memory only, the root token is in a 0600 file whose name is printed, never the token itself (stdout goes to
            // journald and CI logs).
            var line = await stdout.WaitForAsync("dev mode: the root token is in ", TimeSpan.FromSeconds(10));
            var tokenFile = line["dev mode: the root token is in ".Length..].Split(' ')[0];
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(tokenFile));
            Assert.DoesNotContain((await File.ReadAllTextAsync(tokenFile)).Trim(), stdout.All, StringComparison.Ordinal);

            Assert.Equal(ExitCodes.Ok, (await MorphRunner.RunAsync("kms", "status", "--address", address)).ExitCode);
            Assert.Equal(ExitCodes.Ok, (await MorphRunner.RunAsync("kms", "function", "list", "--address", address, "--token-file", tokenFile)).ExitCode);

            await cts.CancelAsync();
            Assert.Equal(ExitCodes.Ok, await run);
            // The token dies with the in-memory KMS, and so does its file.
            Assert.False(File.Exists(tokenFile));
            var warnings = stderr.ToString();
            Assert.Contains("dev mode is enabled", warnings, StringComparison.Ordinal);
            Assert.Contains("simulated TEE", warnings, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("--listen", "127.0.0.1:0")]
    [InlineData("--storage", "inmem", "--tls-cert", "/nonexistent.pem")]
    [InlineData("--storage", "inmem", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key")]
    [InlineData("--storage", "sqlite:")]
    [InlineData("--storage", "inmem", "--tls-self", "--tls-cert", "a", "--tls-key", "b")]
    [InlineData("--storage", "redis:x", "--listen", "127.0.0.1:0")]
    [InlineData("--dev", "--listen", "example.org:0")]
    [InlineData("--dev", "--trust-simulated-tee", "/nonexistent-simulated-tee")]
    [InlineData("--dev", "--dcap-collateral", "/nonexistent-collateral")]
    [InlineData("--dev", "--dcap-collateral", "/tmp", "--dcap-pcs", "https://api.trustedservices.intel.com/")]
    [InlineData("--dev", "--dcap-pcs", "ftp://pccs.internal/")]
    [InlineData("--dev", "--dcap-min-tcb-evaluation-data-number", "snp=17")]
    [InlineData("--dev", "--dcap-min-tcb-evaluation-data-number", "sgx=-1")]
    [InlineData("--dev", "--dcap-min-tcb-evaluation-data-number", "sgx=17", "--dcap-min-tcb-evaluation-data-number", "sgx=18")]
    public async Task Server_options_are_checked_before_anything_starts(params string[] args)
    {
        var outcome = await MorphRunner.RunAsync(["kms", "server", .. args]);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.StartsWith("morph: ", outcome.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("15", "expected a duration such as 15m")]
    [InlineData("-5m", "expected a duration such as 15m")]
    [InlineData("0s", "must be positive")]
    [InlineData("769h", "must not exceed the max token TTL (768h0m0s)")]
    [InlineData("10s", "must be at least 1m0s: every instance re-attests")]
    [InlineData("500ms", "must be at least 1m0s")]
    public async Task A_bad_function_certificate_ttl_is_a_usage_error_naming_the_flag(string value, string problem)
    {
        // Bounded: a value wrongly accepted starts a server that runs until stopped.
        var outcome = await MorphRunner.RunAsync("kms", "server", "--dev", "--listen", "127.0.0.1:0", "--function-cert-ttl", value).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.StartsWith("morph: --function-cert-ttl: ", outcome.Stderr, StringComparison.Ordinal);
        Assert.Contains(problem, outcome.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://pccs.internal:8081/")]
    [InlineData("http://10.0.0.5:8081/")]
    [InlineData("http://localhost.example/")]
    public async Task Dcap_pcs_over_plain_http_to_another_machine_is_a_usage_error_naming_the_flag(string url)
    {
        // Whoever answers in the PCCS's place could send older Intel collateral or a 404 for the PCK CRL. Bounded: a
        // value wrongly accepted starts a server that runs until stopped.
        var outcome = await MorphRunner.RunAsync("kms", "server", "--dev", "--listen", "127.0.0.1:0", "--dcap-pcs", url).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.StartsWith($"morph: --dcap-pcs: {url} is plain http to another machine", outcome.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8081/")]
    [InlineData("http://localhost:8081/pccs/")]
    [InlineData("http://[::1]:8081/")]
    [InlineData("https://pccs.internal:8081/")]
    public async Task Dcap_pcs_over_https_or_loopback_http_passes_its_check(string url)
    {
        // A flag checked after --dcap-pcs stops the start, so reaching it shows the URL was accepted.
        var outcome = await MorphRunner.RunAsync("kms", "server", "--dev", "--listen", "127.0.0.1:0", "--dcap-pcs", url, "--trust-simulated-tee", "/nonexistent-simulated-tee");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.StartsWith("morph: --trust-simulated-tee: no simulated TEE", outcome.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Trusting_a_directory_without_a_simulated_tee_is_refused_and_creates_nothing()
    {
        var dir = Directory.CreateTempSubdirectory("morph-kms-empty-tee-").FullName;
        try
        {
            var outcome = await MorphRunner.RunAsync("kms", "server", "--dev", "--listen", "127.0.0.1:0", "--trust-simulated-tee", dir);
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains("no simulated TEE", outcome.Stderr, StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_collateral_directory_without_collateral_is_refused()
    {
        // An empty store would answer nothing, leaving every login's collateral unchecked while looking configured.
        var dir = Directory.CreateTempSubdirectory("morph-kms-no-collateral-").FullName;
        try
        {
            var outcome = await MorphRunner.RunAsync("kms", "server", "--dev", "--listen", "127.0.0.1:0", "--dcap-collateral", dir);
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"--dcap-collateral: no collateral files in {dir}", outcome.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_bad_snp_crl_file_is_a_usage_error_naming_it()
    {
        var dir = Directory.CreateTempSubdirectory("morph-kms-snp-crl-").FullName;
        try
        {
            var file = Path.Combine(dir, "milan.crl");
            await File.WriteAllTextAsync(file, "not a crl");
            var outcome = await MorphRunner.RunAsync("kms", "server", "--dev", "--listen", "127.0.0.1:0", "--snp-crl", file).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.StartsWith($"morph: --snp-crl: {file}: not an X.509 CRL", outcome.Stderr, StringComparison.Ordinal);

            outcome = await MorphRunner.RunAsync("kms", "server", "--dev", "--listen", "127.0.0.1:0", "--snp-crl", Path.Combine(dir, "missing.crl")).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains("--snp-crl: no such file or directory", outcome.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Audit_verify_checks_the_chain_offline()
    {
        string log;
        await using (var kms = await CliKms.StartDevAsync(audit: true))
        {
            log = Path.Combine(kms.Directory, "audit.log");
            Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("policy", "list")).ExitCode);
            var copy = Path.Combine(Path.GetTempPath(), $"morph-audit-{Guid.NewGuid():N}.log");
            await kms.Server.DisposeAsync();
            File.Copy(log, copy);
            log = copy;
        }

        try
        {
            var valid = await MorphRunner.RunAsync("kms", "audit", "verify", log);
            Assert.Equal(ExitCodes.Ok, valid.ExitCode);
            Assert.StartsWith("valid:", valid.Stdout, StringComparison.Ordinal);

            var lines = await File.ReadAllLinesAsync(log);
            Assert.Contains("\"operation\":\"list\"", lines[0], StringComparison.Ordinal);
            lines[0] = lines[0].Replace("\"operation\":\"list\"", "\"operation\":\"read\"", StringComparison.Ordinal);
            await File.WriteAllLinesAsync(log, lines);
            var broken = await MorphRunner.RunAsync("kms", "audit", "verify", log, "--json");
            Assert.Equal(ExitCodes.Rejected, broken.ExitCode);
            Assert.Contains("\"valid\": false", broken.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(log);
        }

        Assert.Equal(ExitCodes.UsageOrInput, (await MorphRunner.RunAsync("kms", "audit", "verify", log)).ExitCode);
    }

    /// <summary>Collects written lines so a test can wait for one while the command keeps running.</summary>
    private sealed class LineWriter : TextWriter
    {
        private readonly BlockingCollection<string> _lines = [];
        private readonly StringBuilder _current = new();
        private readonly StringBuilder _all = new();
        private readonly Lock _lock = new();

        /// <summary>Everything written so far, consumed lines included.</summary>
        public string All
        {
            get
            {
                lock (_lock)
                {
                    return _all.ToString();
                }
            }
        }

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            lock (_lock)
            {
                _all.Append(value);
                if (value == '\n')
                {
                    _lines.Add(_current.ToString().TrimEnd('\r'));
                    _current.Clear();
                }
                else
                {
                    _current.Append(value);
                }
            }
        }

        public Task<string> WaitForAsync(string prefix, TimeSpan timeout) => Task.Run(() =>
        {
            using var cts = new CancellationTokenSource(timeout);
            foreach (var line in _lines.GetConsumingEnumerable(cts.Token))
            {
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return line;
                }
            }

            throw new TimeoutException(prefix);
        });
    }
}
