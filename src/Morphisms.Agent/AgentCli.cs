using System.CommandLine;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;

namespace Morphisms.Agent;

/// <summary>
/// <c>morph-init --kms URL (--kms-ca FILE | --kms-ca-sha256 HEX) --function NAME [...] -- APP ARGS...</c>: the one
/// command of the guest agent. The pin may also come from the measured launch configuration (<c>kms_ca_sha256</c>);
/// when both are given they must agree.
/// </summary>
public static class AgentCli
{
    /// <summary>Parses and runs; usage errors return <see cref="AgentExitCodes.Usage"/>.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken stop)
    {
        var kms = new Option<string>("--kms") { Description = "KMS base address (https).", Required = true };
        var kmsCa = new Option<FileInfo?>("--kms-ca") { Description = "PEM of the KMS root CA to pin." };
        var kmsCaSha = new Option<string?>("--kms-ca-sha256") { Description = "SHA-256 (hex) of the KMS root CA certificate DER to pin." };
        var function = new Option<string>("--function") { Description = "The function this instance runs.", Required = true };
        var tee = new Option<string>("--tee") { Description = "Evidence provider: sim, gramine, snp, tdx, auto.", DefaultValueFactory = _ => "auto" };
        tee.AcceptOnlyFromAmong("sim", "gramine", "snp", "tdx", "auto");
        var port = new Option<int>("--port") { Description = "TLS port of the instance.", DefaultValueFactory = _ => 8443 };
        var listen = new Option<string>("--listen-address") { Description = "Address the TLS terminator binds.", DefaultValueFactory = _ => "0.0.0.0" };
        var appPort = new Option<int>("--app-port") { Description = "The app's plain-HTTP port on loopback.", DefaultValueFactory = _ => 8080 };
        var secretsDir = new Option<string>("--secrets-dir") { Description = "Private directory (tmpfs) for secret files.", DefaultValueFactory = _ => "/run/morph/secrets" };
        var secretPath = new Option<string?>("--secret-path") { Description = "KV v2 path of the secret bundle (default secret/data/FUNCTION)." };
        var reload = new Option<string?>("--reload-command") { Description = "Shell command run after new secrets are written (default: SIGHUP the app)." };
        var poll = new Option<double>("--secrets-poll-seconds") { Description = "How often to check for a new secret version.", DefaultValueFactory = _ => 10 };
        var reportUrl = new Option<string?>("--report-url") { Description = "POST the cold-start report here." };
        var simDir = new Option<string?>("--sim-dir") { Description = "State directory of the installation's simulated TEE (--tee sim)." };
        var bundleDir = new Option<string?>("--bundle") { Description = "The function bundle directory the simulated TEE measures." };
        var launchConfig = new Option<FileInfo?>("--launch-config") { Description = "The measured launch configuration (JSON; may carry kms_ca_sha256)." };
        var simFormat = new Option<string>("--sim-format") { Description = "Simulated evidence format: snp or sgx.", DefaultValueFactory = _ => "snp" };
        simFormat.AcceptOnlyFromAmong("snp", "sgx");
        var attempts = new Option<int>("--kms-attempts") { Description = "Attempts per KMS call before giving up.", DefaultValueFactory = _ => 5 };
        var app = new Argument<string[]>("app") { Description = "The app command line (after --).", Arity = ArgumentArity.OneOrMore };

        var root = new RootCommand("morph-init: attest to the KMS, provision secrets, then run the app behind attested TLS.")
        {
            kms, kmsCa, kmsCaSha, function, tee, port, listen, appPort, secretsDir, secretPath, reload, poll, reportUrl,
            simDir, bundleDir, launchConfig, simFormat, attempts, app,
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
            var config = parsed.GetValue(launchConfig) is { } file ? await File.ReadAllBytesAsync(file.FullName, stop) : [];
            var options = new AgentOptions
            {
                Kms = Url(parsed.GetValue(kms)!, "--kms"),
                KmsCaSha256 = Pin(parsed.GetValue(kmsCa), parsed.GetValue(kmsCaSha), config),
                Function = parsed.GetValue(function)!,
                App = parsed.GetValue(app)!,
                Tee = parsed.GetValue(tee)!,
                Port = parsed.GetValue(port),
                ListenAddress = parsed.GetValue(listen)!,
                AppPort = parsed.GetValue(appPort),
                SecretsDir = parsed.GetValue(secretsDir)!,
                SecretPath = parsed.GetValue(secretPath),
                ReloadCommand = parsed.GetValue(reload),
                SecretsPollInterval = TimeSpan.FromSeconds(parsed.GetValue(poll)),
                ReportUrl = parsed.GetValue(reportUrl) is { } report ? Url(report, "--report-url") : null,
                KmsAttempts = parsed.GetValue(attempts),
                Simulated = new SimulatedTeeOptions
                {
                    AuthorityDirectory = parsed.GetValue(simDir),
                    BundleDirectory = parsed.GetValue(bundleDir),
                    Format = parsed.GetValue(simFormat)!,
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
    /// The KMS CA pin from the flags and the launch configuration. Flags alone are not measured, so when the launch
    /// configuration names a pin it wins, and a contradicting flag is an error rather than silently ignored.
    /// </summary>
    public static byte[] Pin(FileInfo? caFile, string? sha256Hex, byte[] launchConfig)
    {
        byte[]? fromFlags = null;
        if (caFile is not null && sha256Hex is not null)
        {
            throw new AgentException(AgentExitCodes.Usage, "give either --kms-ca or --kms-ca-sha256, not both");
        }

        if (caFile is not null)
        {
            using var ca = X509Certificate2.CreateFromPemFile(caFile.FullName);
            fromFlags = SHA256.HashData(ca.RawData);
        }
        else if (sha256Hex is not null)
        {
            fromFlags = ParseHex(sha256Hex, "--kms-ca-sha256");
        }

        byte[]? fromConfig = null;
        if (launchConfig.Length > 0)
        {
            try
            {
                if (JsonNode.Parse(launchConfig)?["kms_ca_sha256"]?.GetValue<string>() is { } hex)
                {
                    fromConfig = ParseHex(hex, "launch configuration kms_ca_sha256");
                }
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new AgentException(AgentExitCodes.Usage, $"the launch configuration is not JSON: {e.Message}");
            }
        }

        if (fromConfig is not null && fromFlags is not null && !fromConfig.AsSpan().SequenceEqual(fromFlags))
        {
            throw new AgentException(AgentExitCodes.Usage, "the KMS CA pin given on the command line differs from the measured launch configuration's");
        }

        return fromConfig ?? fromFlags ?? throw new AgentException(AgentExitCodes.Usage, "no KMS CA pin: give --kms-ca, --kms-ca-sha256 or kms_ca_sha256 in the launch configuration");
    }

    private static Uri Url(string text, string what) =>
        Uri.TryCreate(text, UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttps || (what != "--kms" && url.Scheme == Uri.UriSchemeHttp))
            ? url
            : throw new AgentException(AgentExitCodes.Usage, what == "--kms" ? $"--kms must be an https URL, got '{text}'" : $"{what} must be an http(s) URL, got '{text}'");

    private static byte[] ParseHex(string hex, string what)
    {
        hex = hex.Trim().Replace(":", "", StringComparison.Ordinal);
        if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
        {
            throw new AgentException(AgentExitCodes.Usage, $"{what} must be 64 hex digits (SHA-256)");
        }

        return Convert.FromHexString(hex);
    }
}
