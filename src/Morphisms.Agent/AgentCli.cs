using System.CommandLine;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Agent;

/// <summary>
/// <c>morph-init --kms URL (--kms-ca FILE | --kms-ca-sha256 HEX) --function NAME [...] -- APP ARGS...</c>: the one
/// command of the guest agent. The pin the agent uses comes from the TEE's measured launch configuration (SNP HOST_DATA,
/// TDX MRCONFIGID, the Gramine manifest, the simulated launch configuration); a command-line pin must agree with it, and
/// stands alone only with <c>--allow-unmeasured-pin</c> (see <see cref="Kms.PinResolver"/>).
/// </summary>
public static class AgentCli
{
    /// <summary>
    /// Parses and runs; usage errors return <see cref="AgentExitCodes.Usage"/>. <paramref name="dumpableFailure"/> is
    /// what the entry point reports of making the process non-dumpable (null: done), logged once the log exists.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop, string? dumpableFailure = null)
    {
        // Before anything else, a usage error included: the token's file is deleted (and both variables removed) however
        // the agent ends, so neither an app started later nor a file left behind holds it.
        string? reportToken;
        try
        {
            reportToken = Telemetry.ReportTokenHandOver.Take();
        }
        catch (AgentException e)
        {
            await stderr.WriteLineAsync($"morph-init: {e.Message}");
            return e.ExitCode;
        }

        var kms = new Option<string>("--kms") { Description = "KMS base address (https).", Required = true };
        var kmsCa = new Option<FileInfo?>("--kms-ca") { Description = "PEM of the CA that issued the KMS's TLS certificate (or that certificate) to pin; never the KMS PKI root (root_ca_sha256)." };
        var kmsCaSha = new Option<string?>("--kms-ca-sha256") { Description = "SHA-256 (hex) of the DER of the CA that issued the KMS's TLS certificate (or of that certificate) to pin; never the KMS PKI root (root_ca_sha256)." };
        var initdata = new Option<string?>("--initdata") { Description = "Kata initdata document (env:NAME or a file; base64+gzip or TOML) whose digest the TEE measured; its morph.toml carries the KMS CA pin." };
        var allowUnmeasured = new Option<bool>("--allow-unmeasured-pin") { Description = "Use the command-line pin when the launch configuration measured none (the host then chooses the KMS)." };
        var function = new Option<string>("--function") { Description = "The function this instance runs.", Required = true };
        var tee = new Option<string>("--tee") { Description = "Evidence provider: sim, gramine, snp, tdx, auto.", DefaultValueFactory = _ => "auto" };
        tee.AcceptOnlyFromAmong("sim", "gramine", "snp", "tdx", "auto");
        var port = new Option<int>("--port") { Description = "TLS port of the instance.", DefaultValueFactory = _ => 8443 };
        var listen = new Option<string>("--listen-address") { Description = "Address the TLS terminator binds.", DefaultValueFactory = _ => "0.0.0.0" };
        var appPort = new Option<int>("--app-port") { Description = "The app's plain-HTTP port on loopback.", DefaultValueFactory = _ => 8080 };
        var appSocket = new Option<string?>("--app-socket") { Description = "The app's UNIX domain socket (given to it as MORPH_APP_SOCKET) instead of --app-port; required under --tee gramine." };
        var secretsDir = new Option<string>("--secrets-dir") { Description = "Private directory (tmpfs) for secret files.", DefaultValueFactory = _ => "/run/morph/secrets" };
        var secretPath = new Option<string?>("--secret-path") { Description = "KV v2 path of the secret bundle (default secret/data/FUNCTION)." };
        var reload = new Option<string?>("--reload-command") { Description = "Shell command run after new secrets are written (default: SIGHUP the app)." };
        var poll = new Option<double>("--secrets-poll-seconds") { Description = "How often to check for a new secret version.", DefaultValueFactory = _ => 10 };
        var reportUrl = new Option<string?>("--report-url") { Description = "POST the cold-start report here." };
        var simDir = new Option<string?>("--sim-dir") { Description = "State directory of the installation's simulated TEE (--tee sim)." };
        var bundleDir = new Option<string?>("--bundle") { Description = "The function bundle directory the simulated TEE measures." };
        var launchConfig = new Option<FileInfo?>("--launch-config") { Description = "The simulated TEE's measured launch configuration (JSON; may carry kms_ca_sha256)." };
        var simHostData = new Option<string?>("--sim-host-data") { Description = "SNP HOST_DATA (64 hex digits) of the simulated launch, e.g. the KMS CA pin." };
        var simFormat = new Option<string>("--sim-format") { Description = "Simulated evidence format: snp or sgx.", DefaultValueFactory = _ => "snp" };
        simFormat.AcceptOnlyFromAmong("snp", "sgx");
        var appStart = new Option<string>("--app-start")
        {
            Description = "When to start the app: after-secrets, or early (in parallel with attestation; the app must wait for MORPH_SECRETS_READY). Default: $MORPH_APP_START, else after-secrets.",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("MORPH_APP_START") is { Length: > 0 } fromEnv ? fromEnv : "after-secrets",
        };
        appStart.AcceptOnlyFromAmong("after-secrets", "early");
        var attempts = new Option<int>("--kms-attempts") { Description = "Attempts per KMS call before giving up.", DefaultValueFactory = _ => 5 };
        var app = new Argument<string[]>("app") { Description = "The app command line (after --).", Arity = ArgumentArity.OneOrMore };

        var root = new RootCommand("morph-init: attest to the KMS, provision secrets, then run the app behind attested TLS.")
        {
            kms, kmsCa, kmsCaSha, initdata, allowUnmeasured, function, tee, port, listen, appPort, appSocket, secretsDir, secretPath, reload, poll, reportUrl,
            simDir, bundleDir, launchConfig, simHostData, simFormat, attempts, appStart, app,
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors)
            {
                await stderr.WriteLineAsync($"morph-init: {error.Message}");
            }

            return AgentExitCodes.Usage;
        }

        if (parsed.Action is not null && (args.Contains("--help") || args.Contains("-h") || args.Contains("--version")))
        {
            return await parsed.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr }, stop);
        }

        try
        {
            var config = parsed.GetValue(launchConfig) is { } file ? await ReadLaunchConfigAsync(file, stop) : [];
            var options = new AgentOptions
            {
                Kms = Url(parsed.GetValue(kms)!, "--kms"),
                KmsCaSha256 = CommandLinePin(parsed.GetValue(kmsCa), parsed.GetValue(kmsCaSha)),
                AllowUnmeasuredPin = parsed.GetValue(allowUnmeasured),
                Initdata = parsed.GetValue(initdata) is { } initdataSource ? LoadInitdata(initdataSource) : null,
                Function = parsed.GetValue(function)!,
                App = parsed.GetValue(app)!,
                Tee = parsed.GetValue(tee)!,
                Port = parsed.GetValue(port),
                ListenAddress = parsed.GetValue(listen)!,
                AppPort = parsed.GetValue(appPort),
                AppSocket = parsed.GetValue(appSocket),
                SecretsDir = parsed.GetValue(secretsDir)!,
                SecretPath = parsed.GetValue(secretPath),
                ReloadCommand = parsed.GetValue(reload),
                SecretsPollInterval = TimeSpan.FromSeconds(parsed.GetValue(poll)),
                ReportUrl = parsed.GetValue(reportUrl) is { } report ? Url(report, "--report-url") : null,
                ReportToken = reportToken,
                DumpableFailure = dumpableFailure,
                KmsAttempts = parsed.GetValue(attempts),
                AppStart = ParseAppStart(parsed.GetValue(appStart)!),
                Simulated = new SimulatedTeeOptions
                {
                    AuthorityDirectory = parsed.GetValue(simDir),
                    BundleDirectory = parsed.GetValue(bundleDir),
                    Format = parsed.GetValue(simFormat)!,
                    HostData = parsed.GetValue(simHostData) is { } hostData ? ParseHex(hostData, "--sim-host-data") : null,
                },
                Log = stderr,
            };
            return await new Agent(options, config).RunAsync(stop);
        }
        catch (AgentException e)
        {
            await stderr.WriteLineAsync($"morph-init: {e.Message}");
            return e.ExitCode;
        }
    }

    /// <summary>
    /// The pin named on the command line, or null. It is not measured, so the agent only cross-checks it against the
    /// measured pin (or uses it alone with <c>--allow-unmeasured-pin</c>).
    /// </summary>
    public static byte[]? CommandLinePin(FileInfo? caFile, string? sha256Hex)
    {
        if (caFile is not null && sha256Hex is not null)
        {
            throw new AgentException(AgentExitCodes.Usage, "give either --kms-ca or --kms-ca-sha256, not both");
        }

        if (caFile is not null)
        {
            try
            {
                using var ca = X509Certificate2.CreateFromPemFile(caFile.FullName);
                return SHA256.HashData(ca.RawData);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException)
            {
                // A usage error like any other bad argument: one line naming the file, not a crash with a stack trace.
                throw new AgentException(AgentExitCodes.Usage, $"--kms-ca {caFile.FullName}: cannot read a PEM certificate from it ({e.Message})", e);
            }
        }

        return sha256Hex is null ? null : ParseHex(sha256Hex, "--kms-ca-sha256");
    }

    // An unreadable file is a usage error naming it (its content, malformed or not, is judged by the simulated TEE).
    private static async Task<byte[]> ReadLaunchConfigAsync(FileInfo file, CancellationToken stop)
    {
        try
        {
            return await File.ReadAllBytesAsync(file.FullName, stop).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AgentException(AgentExitCodes.Usage, $"--launch-config {file.FullName}: cannot read it ({e.Message})", e);
        }
    }

    // The default comes from MORPH_APP_START (the function spec's measured env), which the parser does not validate.
    private static AppStart ParseAppStart(string value) => value switch
    {
        "after-secrets" => AppStart.AfterSecrets,
        "early" => AppStart.Early,
        _ => throw new AgentException(AgentExitCodes.Usage, $"--app-start / MORPH_APP_START must be after-secrets or early, not '{value}'"),
    };

    /// <summary>Loads <c>--initdata</c>; an unreadable or malformed document stops the agent before it talks to anyone.</summary>
    internal static Evidence.KataInitdata LoadInitdata(string source)
    {
        try
        {
            return Evidence.KataInitdata.Load(source, Environment.GetEnvironmentVariable);
        }
        catch (Evidence.EvidenceException e)
        {
            throw new AgentException(AgentExitCodes.Evidence, e.Message, e);
        }
    }

    private static Uri Url(string text, string what) =>
        Uri.TryCreate(text, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttps || (what != "--kms" && url.Scheme == Uri.UriSchemeHttp))
            ? url
            : throw new AgentException(AgentExitCodes.Usage, what == "--kms" ? $"--kms must be an https URL, got '{text}'" : $"{what} must be an http(s) URL, got '{text}'");

    private static byte[] ParseHex(string hex, string what) =>
        Evidence.MeasuredPin.ParseHex(hex) ?? throw new AgentException(AgentExitCodes.Usage, $"{what} must be 64 hex digits (SHA-256)");
}
