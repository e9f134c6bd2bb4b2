using System.CommandLine;
using System.Net;
using System.Text.Json.Nodes;
using Morphisms.Cli.Commands.Kms;
using Morphisms.Cli.Commands.Serving;
using Morphisms.Cli.Commands.Up;
using Morphisms.Cli.Paths;
using Morphisms.Client.Functions;
using Morphisms.Client.Trust;
using Morphisms.Serving.Hosting;

namespace Morphisms.Cli.Commands.Invoke;

/// <summary>
/// <c>morph invoke FN</c>: calls a function over TLS through the gateway, verifying its certificate against the KMS
/// root CA pinned by <c>morph kms trust</c> (or by <c>morph up</c> through the same attestation) and the function's
/// attested identity, then prints the response. With <c>--tag TAG</c> it calls the revision tagged so
/// (<c>morph traffic --tag</c>) at <c>TAG-FN.DOMAIN</c>, still verifying the certificate as FN's.
/// </summary>
public static class InvokeCommand
{
    // How long the control API may take to list the functions after a call failed: it only sharpens the message.
    private static readonly TimeSpan ListTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var function = new Argument<string>("function") { Description = "The function name (served at FUNCTION.DOMAIN)." };
        var data = new Option<string?>("--data") { Description = "POST this body (STRING, or @FILE for a file's bytes); without it, GET." };
        var path = new Option<string>("--path") { Description = "The request path.", DefaultValueFactory = _ => "/" };
        var show = new Option<bool>("--show-attestation") { Description = "Also print the function's attested identity and certificate chain." };
        var measurement = new Option<string?>("--expect-measurement")
        {
            Description = "Refuse unless the function's instance was attested by this TEE with this measurement: " + FunctionMeasurementPin.Syntax
                + " (a TDX function's certificate carries only MRTD, the TD firmware; bare hex is read as sgx: for 64 digits, snp: for 96, never tdx:).",
            HelpName = "TEE:HEX",
        };
        var kms = new Option<string?>("--kms") { Description = "The pinned KMS whose root CA the function must chain to (default: morph up's)." };
        var gateway = new Option<string?>("--gateway") { Description = "The gateway's IP:PORT (default: morph up's)." };
        var domain = new Option<string?>("--domain") { Description = "The serving domain (default: morph up's)." };
        var tag = new Option<string?>("--tag")
        {
            Description = "Call the revision tagged TAG (morph traffic --tag REV=TAG) at TAG-FUNCTION.DOMAIN; its certificate is verified as FUNCTION's, as without a tag.",
            HelpName = "TAG",
        };
        var noRevocationCheck = new Option<bool>("--no-revocation-check")
        {
            Description = "INSECURE: do not check the function's certificate against the KMS's CRL (fetched from the pinned KMS, required by default, "
                + "so a retired revision's instance is refused within 30 s); it is then accepted until its certificate expires. Prints a warning.",
        };
        var command = new Command("invoke", "Call a function over attested TLS through the gateway and print the response.")
        {
            function, data, path, show, measurement, kms, gateway, domain, tag, noRevocationCheck,
        };
        command.SetAction(async (parse, ct) =>
        {
            KmsTrustRecord trust;
            InvokeRequest request;
            Func<CancellationToken, Task<JsonArray?>>? listDeployed;
            try
            {
                // Parsed first: a malformed pin is a usage error whatever the state of morph up or the trust store.
                var pinText = parse.GetValue(measurement);
                var pin = pinText is null ? null : ParsePin(pinText);
                if (pinText is not null && !FunctionMeasurementPin.IsTyped(pinText))
                {
                    // Kept working for SNP and SGX scripts; said, so a refusal that follows for a TDX function is understood.
                    await stderr.WriteLineAsync($"note: --expect-measurement {pinText.Trim()} has no TEE: read as {pin} (a TDX function needs tdx:MRTD)");
                }

                var name = parse.GetValue(function)!;
                if (!IsDnsLabel(name))
                {
                    throw new InvokeUsageException($"'{name}' is not a function name: a function is deployed under a DNS label (lowercase letters, digits, '-'), served at NAME.DOMAIN");
                }

                var tagName = parse.GetValue(tag);
                if (tagName is not null && (!IsDnsLabel(tagName) || tagName.Length + 1 + name.Length > 63))
                {
                    // The tag and the name make one DNS label of the host name, TAG-NAME.
                    throw new InvokeUsageException($"--tag: '{tagName}' is not a tag of {name}: a tag is a DNS label (lowercase letters, digits, '-'), and TAG-{name} must be one too (at most 63 characters)");
                }

                var paths = MorphPaths.FromEnvironment();
                var up = UpStateFile.ReadLive(Path.Combine(paths.DataDirectory, UpStateFile.FileName));
                // Nothing to talk to is a failure (exit 1), as for `morph ls` and `morph kms`, not a usage error.
                var kmsUrl = parse.GetValue(kms) ?? up?.KmsUrl ?? throw new NoMorphUpException(NoUp(paths, "--kms URL --gateway IP:PORT"));
                if (!Uri.TryCreate(kmsUrl, UriKind.Absolute, out _))
                {
                    // Else the trust store's lookup fails with a bare "Invalid URI".
                    throw new InvokeUsageException($"--kms: not a URL: {kmsUrl}");
                }

                var store = new KmsTrustStore(Path.Combine(paths.ConfigDirectory, KmsTrustCommand.TrustFileName));
                trust = store.Find(kmsUrl) ?? throw new InvokeUsageException($"the KMS {kmsUrl} is not trusted: run 'morph kms trust {kmsUrl} --expect-measurement TEE:HEX' first (the KMS image's published measurement: {KmsMeasurementPin.Syntax})");
                if (trust.UsabilityProblem() is { } stale)
                {
                    throw new InvokeUsageException(stale);
                }

                var gatewayText = parse.GetValue(gateway) ?? up?.Gateway ?? throw new NoMorphUpException(NoUp(paths, "--gateway IP:PORT"));
                if (!IPEndPoint.TryParse(gatewayText, out var endPoint) || endPoint.Port == 0)
                {
                    throw new InvokeUsageException($"--gateway: expected IP:PORT, got '{gatewayText}'");
                }

                var serving = parse.GetValue(domain) ?? up?.Domain ?? "fn.morphisms.local";
                if (!IsDomain(serving))
                {
                    throw new InvokeUsageException($"--domain: '{serving}' is not a DNS domain (dot-separated labels of letters, digits, '-')");
                }

                var requestPath = parse.GetValue(path)!;
                request = new InvokeRequest(
                    name,
                    serving,
                    endPoint,
                    requestPath.StartsWith('/') ? requestPath : "/" + requestPath,
                    parse.GetValue(data) is { } text ? Body(text) : null,
                    pin,
                    parse.GetValue(noRevocationCheck),
                    store,
                    tagName);
                listDeployed = DeployedLister(paths, endPoint);
            }
            catch (NoMorphUpException e)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.Rejected;
            }
            catch (Exception e) when (e is InvokeUsageException or FormatException or IOException or UnauthorizedAccessException or InvalidDataException)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            return await RunAsync(trust, request, parse.GetValue(show), stdout, stderr, ct, listDeployed);
        });
        return command;
    }

    /// <summary>
    /// Invokes and prints; 0 for a 2xx answer from a verified function, 1 otherwise (a 3xx included: it is not followed).
    /// After a failed call, <paramref name="listDeployed"/> (when given) lists the serving host's functions, to tell a
    /// function that is not deployed from one with no ready instance: a call that works costs no extra round trip.
    /// </summary>
    internal static async Task<int> RunAsync(KmsTrustRecord trust, InvokeRequest request, bool showAttestation, TextWriter stdout, TextWriter stderr, CancellationToken ct,
        Func<CancellationToken, Task<JsonArray?>>? listDeployed = null)
    {
        InvokeResult result;
        try
        {
            result = await FunctionInvoker.InvokeAsync(trust, request, ct, stderr);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            var deployed = listDeployed is null ? null : await listDeployed(ct);
            // A handshake answered with plain HTTP is a gateway whose functions are not attested: said so, never retried in clear.
            var plainHttp = InvokeFailure.IsHandshakeFailure(e) && await InvokeFailure.AnswersPlainHttpAsync(request.Gateway, request.Host, ct);
            await stderr.WriteLineAsync($"morph: {InvokeFailure.Describe(e, request, deployed, FunctionInvoker.Timeout, plainHttp)}");
            return ExitCodes.Rejected;
        }

        if (result.Refusals.Count > 0)
        {
            await stderr.WriteLineAsync($"morph: {request.Function}: certificate REFUSED, nothing was sent:");
            foreach (var refusal in result.Refusals)
            {
                await stderr.WriteLineAsync($"  {refusal}");
            }

            return ExitCodes.Rejected;
        }

        if (result.Identity is { Simulated: true })
        {
            await stderr.WriteLineAsync("note: the function was attested by the SIMULATED TEE (accepted because the pinned KMS is simulated too)");
        }

        if (showAttestation && result.Identity is not null)
        {
            await FunctionInvoker.PrintAttestationAsync(stdout, trust, result);
        }

        var ok = (int)result.Status!.Value is >= 200 and < 300;
        if (!ok)
        {
            await stderr.WriteLineAsync($"morph: {request.Function} answered {(int)result.Status}"
                + (result.Location is { } location ? $", redirecting to {location} (not followed)" : string.Empty));
        }

        var body = System.Text.Encoding.UTF8.GetString(result.Body);
        await stdout.WriteAsync(body);
        if (body.Length > 0 && !body.EndsWith('\n'))
        {
            await stdout.WriteLineAsync();
        }

        return ok ? ExitCodes.Ok : ExitCodes.Rejected;
    }

    private static byte[] Body(string data)
    {
        if (data.StartsWith('@'))
        {
            try
            {
                return BoundedInput.ReadFileBytes(data[1..], BoundedInput.BodyLimit);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new InvokeUsageException($"--data: {e.Message}");
            }
        }

        return System.Text.Encoding.UTF8.GetBytes(data);
    }

    /// <summary>
    /// True for what a function may be named (the spec's rule): 1–63 of a–z, 0–9 and '-', not starting or ending with
    /// '-'. Checked here because the name becomes the request's host name, and anything else is no function to call.
    /// </summary>
    private static bool IsDnsLabel(string label) =>
        label.Length is > 0 and <= 63
        && label.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
        && label[0] != '-' && label[^1] != '-';

    /// <summary>True for a DNS domain (labels as <see cref="IsDnsLabel"/>, any case) that leaves room for a function name in a host name.</summary>
    private static bool IsDomain(string domain) =>
        domain.Length <= 253 - 64 && domain.Split('.').All(l => IsDnsLabel(l.ToLowerInvariant()));

    /// <summary>Parses <c>--expect-measurement</c>; a <see cref="FormatException"/> names the option and what is wrong.</summary>
    private static FunctionMeasurementPin ParsePin(string text)
    {
        try
        {
            return FunctionMeasurementPin.Parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"--expect-measurement: {e.Message}", e);
        }
    }

    /// <summary>Why there is nothing to talk to: no live <c>DATA/up.json</c>, and the options that would do without it.</summary>
    private static string NoUp(MorphPaths paths, string options)
    {
        var file = Path.Combine(paths.DataDirectory, UpStateFile.FileName);
        return $"no `morph up` is running ({(File.Exists(file) ? $"{file} is left from one that stopped" : $"no {file}")}): start one, or pass {options}";
    }

    /// <summary>
    /// Lists the functions of the serving host whose gateway is <paramref name="gateway"/> (found through its state file),
    /// or null when there is none or another gateway was given: its list says nothing about that one. Any failure of the
    /// listing is null too, since it only sharpens the message of a call that already failed.
    /// </summary>
    private static Func<CancellationToken, Task<JsonArray?>>? DeployedLister(MorphPaths paths, IPEndPoint gateway)
    {
        ServingStateFile? state;
        try
        {
            state = ServingStateFile.Read(Path.Combine(paths.DataDirectory, ServingStateFile.FileName));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        if (state?.ControlTokenFile is not { } tokenFile || !IPEndPoint.TryParse(state.Gateway, out var own) || !own.Equals(gateway))
        {
            return null;
        }

        return async ct =>
        {
            try
            {
                using var http = ServingControl.CreateClient(state.Control, ServingControl.ReadToken(tokenFile));
                http.Timeout = ListTimeout;
                return await ServingControl.SendAsync(http, HttpMethod.Get, "v1/functions", null, ct) as JsonArray;
            }
            catch (Exception e) when (e is ServingCliException or HttpRequestException or TaskCanceledException or InvalidOperationException or UriFormatException or System.Text.Json.JsonException)
            {
                return null;
            }
        };
    }

    private sealed class InvokeUsageException(string message) : Exception(message);

    /// <summary>No <c>morph up</c> and no option standing in for it: an operational failure (exit 1).</summary>
    private sealed class NoMorphUpException(string message) : Exception(message);
}
