using System.CommandLine;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Cli.Commands.Invoke;
using Morphisms.Cli.Commands.Up;
using Morphisms.Cli.Paths;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Cli.Commands.Quickstart;

/// <summary>
/// <c>morph quickstart</c>: the whole story in one command. Starts <c>morph up</c>'s stack in-process, deploys the
/// signer sample (built beside <c>morph</c>), signs a message through the confidential gateway with the
/// function's attestation verified against the KMS root CA pinned through the KMS's own attestation, prints the
/// attestation, the signature and the public key, and shuts everything down.
/// </summary>
public static class QuickstartCommand
{
    /// <summary>Where the build puts the signer sample, relative to <c>morph.dll</c>.</summary>
    public const string SignerDirectory = "samples/signer";

    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var message = new Option<string>("--message") { Description = "The message the signer signs.", DefaultValueFactory = _ => "hello from a confidential function" };
        var function = new Option<string?>("--function-dir") { Description = $"The signer's directory (function.yaml + bundle; default: {SignerDirectory} beside morph)." };
        var command = new Command("quickstart", "Start everything, deploy the signer sample, sign a message over attested TLS, print the result, stop.") { message, function };
        command.SetAction(async (parse, ct) =>
        {
            var paths = MorphPaths.FromEnvironment();
            var dir = parse.GetValue(function) ?? Path.Combine(AppContext.BaseDirectory, SignerDirectory);
            FunctionSpec spec;
            try
            {
                spec = FunctionSpecLoader.Load(dir);
                if (!Directory.Exists(spec.Bundle))
                {
                    throw new FunctionSpecException($"the signer's bundle {spec.Bundle} is missing: build the CLI project (it copies the signer beside morph)");
                }
            }
            catch (FunctionSpecException e)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            var logPath = Path.Combine(paths.DataDirectory, "quickstart.log");
            StreamWriter logFile;
            try
            {
                Directory.CreateDirectory(paths.DataDirectory);

                // Appended to, not truncated: a second quickstart refused by the running one's lock on the data directory
                // must not wipe that one's log.
                logFile = new StreamWriter(logPath, append: true) { AutoFlush = true };
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: cannot write the data directory {paths.DataDirectory} ({e.Message}); set MORPHISMS_HOME or XDG_DATA_HOME to a writable directory");
                return ExitCodes.UsageOrInput;
            }

            await using var _ = logFile;
            var log = TextWriter.Synchronized(logFile);
            await log.WriteLineAsync($"--- morph quickstart, pid {Environment.ProcessId}, {TimeProvider.System.GetUtcNow():O} ---");
            await stdout.WriteLineAsync("1. starting the KMS and confidential serving (morph up, in this process)");
            LocalStack stack;
            try
            {
                stack = await LocalStack.StartAsync(paths, log, ct);
            }
            catch (UpException e)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.Rejected;
            }

            await using (stack)
            {
                await UpCommand.PrintAsync(stdout, stack);
                await stdout.WriteLineAsync($"  log        {logPath}");
                await stdout.WriteLineAsync("   WARNING: development installation: dev-mode KMS and a SIMULATED TEE (real formats, no hardware guarantee)");
                return await RunAsync(stack, spec, parse.GetValue(message)!, stdout, stderr, ct);
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(LocalStack stack, FunctionSpec spec, string message, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        await stdout.WriteLineAsync($"2. deploying {spec.Name} from {spec.Bundle}");
        if (spec.Secrets is { } secrets)
        {
            // The agent refuses to start an app without its secret bundle; the signer needs no key in it (it
            // generates one inside the instance), so an empty bundle is what a first deploy gets.
            string? refused;
            try
            {
                refused = await PutEmptyBundleAsync(stack, secrets, ct);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
            {
                refused = e.Message;
            }

            if (refused is not null)
            {
                // Typically a path outside the dev KMS's KV mount (it mounts secret/, pki/ and transit/ only).
                await stderr.WriteLineAsync($"morph: deploy: the secret bundle '{secrets}' could not be created in the dev KMS: {refused} (the dev KMS keeps bundles under its KV v2 mount: secrets: secret/data/{spec.Name})");
                return ExitCodes.Rejected;
            }
        }

        DeployResult deployed;
        try
        {
            deployed = await stack.Serving.DeployAsync(spec, ct);
        }
        catch (ServingException e)
        {
            await stderr.WriteLineAsync($"morph: deploy: {e.Message}");
            return ExitCodes.Rejected;
        }

        await stdout.WriteLineAsync($"   revision {deployed.Revision}, measurement {deployed.ExpectMeasurement ?? deployed.Measurement}");
        await stdout.WriteLineAsync($"   kms      {deployed.Kms}");

        await stdout.WriteLineAsync($"3. invoking POST https://{deployed.Host}/sign through the gateway (cold start: attest, then serve)");
        var request = new InvokeRequest(spec.Name, stack.State.Domain, IPEndPoint.Parse(stack.State.Gateway), "/sign", System.Text.Encoding.UTF8.GetBytes(message), null);
        InvokeResult result;
        try
        {
            result = await FunctionInvoker.InvokeAsync(stack.Trust, request, ct);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            await stderr.WriteLineAsync($"morph: invoke: {e.Message} (instance log: morph logs {spec.Name}, or {Path.Combine(stack.Paths.DataDirectory, "quickstart.log")})");
            return ExitCodes.Rejected;
        }

        if (result.Refusals.Count > 0 || result.Identity is null)
        {
            await stderr.WriteLineAsync($"morph: {spec.Name}: certificate REFUSED: {string.Join("; ", result.Refusals)}");
            return ExitCodes.Rejected;
        }

        await FunctionInvoker.PrintAttestationAsync(stdout, stack.Trust, result);
        if (result.Status != HttpStatusCode.OK)
        {
            await stderr.WriteLineAsync($"morph: {spec.Name} answered {(int)result.Status!}: {System.Text.Encoding.UTF8.GetString(result.Body)}");
            return ExitCodes.Rejected;
        }

        JsonObject? reply;
        try
        {
            reply = JsonNode.Parse(result.Body) as JsonObject;
        }
        catch (JsonException)
        {
            reply = null;
        }

        if (reply is null)
        {
            // Another function than the signer (--function-dir), or a broken one: its answer is not the signer's.
            await stderr.WriteLineAsync($"morph: {spec.Name} answered 200 without the signer's JSON object: {System.Text.Encoding.UTF8.GetString(result.Body)}");
            return ExitCodes.Rejected;
        }

        await stdout.WriteLineAsync($"signed       {JsonSerializer.Serialize(message)}");
        await stdout.WriteLineAsync($"  algorithm    {reply["algorithm"]}");
        await stdout.WriteLineAsync($"  signature    {reply["signature"]}");
        await stdout.WriteLineAsync($"  public key   {reply["public_key"]}");
        await stdout.WriteLineAsync("   the key was generated inside the instance; verify: Ed25519 over the message's UTF-8 bytes with the public key");
        await stdout.WriteLineAsync("4. stopping: draining instances, sealing the KMS");
        return ExitCodes.Ok;
    }

    /// <summary>Creates an empty secret bundle at <paramref name="secretPath"/> unless one is there; returns null, or why the KMS refused.</summary>
    private static async Task<string?> PutEmptyBundleAsync(LocalStack stack, string secretPath, CancellationToken ct)
    {
        var certificate = stack.Kms.TlsCertificate!.RawData;
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetRawCertData().AsSpan().SequenceEqual(certificate);
        using var http = new HttpClient(handler) { BaseAddress = stack.Kms.BaseAddress };
        http.DefaultRequestHeaders.Add("X-Vault-Token", stack.Kms.DevCredentials!.RootToken);
        using var existing = await http.GetAsync($"v1/{secretPath}", ct);
        if (existing.IsSuccessStatusCode)
        {
            return null; // a second quickstart keeps whatever the user put there (e.g. a signing-key)
        }

        using var response = await http.PostAsync($"v1/{secretPath}", JsonContent.Create(new JsonObject { ["data"] = new JsonObject { ["files"] = new JsonObject() } }), ct);
        if (response.IsSuccessStatusCode)
        {
            return null;
        }

        var text = await response.Content.ReadAsStringAsync(ct);
        string? errors = null;
        try
        {
            errors = (JsonNode.Parse(text) as JsonObject)?["errors"] is JsonArray list ? string.Join("; ", list.Select(e => e?.ToString())) : null;
        }
        catch (JsonException)
        {
            // Not the KMS's error format: the status alone says enough.
        }

        return $"{(int)response.StatusCode} {errors ?? response.ReasonPhrase}";
    }
}
