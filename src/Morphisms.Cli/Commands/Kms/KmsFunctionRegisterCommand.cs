using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms function register NAME</c>: creates or updates a function from a JSON spec (<c>--file</c>, the body
/// of <c>PUT morphisms/functions/NAME</c>) and/or flags, which override the file's fields. New reference values
/// become a new revision.
/// </summary>
public static class KmsFunctionRegisterCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var name = new Argument<string>("name") { Description = "Function name (a DNS label)." };
        var file = new Option<FileInfo?>("--file") { Description = "JSON spec: owners, policies, token_ttl, token_max_ttl, secret_path, snp, sgx, tdx, simulated." };
        var owners = Many("--owner", "Owner (repeatable).");
        var policies = Many("--policy", "Policy granted to the function's tokens (repeatable).");
        var ttl = new Option<string?>("--token-ttl") { Description = "Login token TTL (default 30s)." };
        var maxTtl = new Option<string?>("--token-max-ttl") { Description = "Login token lifetime cap with renewals (default 60m)." };
        var secretPath = new Option<string?>("--secret-path") { Description = "KV path of the function's secret bundle, e.g. secret/data/NAME." };
        var snp = Many("--snp-measurement", "SEV-SNP launch measurement, 48 bytes hex (repeatable).");
        var hostData = new Option<string?>("--snp-host-data") { Description = "Required SEV-SNP HOST_DATA, 32 bytes hex." };
        var minimumTcb = new Option<string?>("--snp-minimum-tcb")
        {
            Description = "Minimum SEV-SNP TCB (snp.minimum_tcb), SPL values 0-255: bootloader=N,tee=N,snp=N,microcode=N[,fmc=N]; "
                + "required by the KMS for new snp values, or 'any' to accept any firmware and microcode (snp.allow_any_tcb, stored, audited and warned about).",
        };
        var sgx = Many("--sgx-mrenclave", "SGX MRENCLAVE, 32 bytes hex (repeatable).");
        var tdx = Many("--tdx-mrtd", "TDX MRTD, 48 bytes hex (repeatable).");
        var rtmr1 = new Option<string?>("--tdx-rtmr1") { Description = "Required TDX RTMR1 (the guest kernel), 48 bytes hex." };
        var rtmr2 = new Option<string?>("--tdx-rtmr2") { Description = "Required TDX RTMR2 (the kernel command line and initrd), 48 bytes hex." };
        var mrConfigId = new Option<string?>("--tdx-mrconfigid") { Description = "Required TDX MRCONFIGID (with Kata: SHA-384 of the initdata document), 48 bytes hex." };
        var bindsWorkload = new Option<bool>("--launch-measurement-binds-workload")
        {
            Description = "State that the function is built into the measured image, so the snp/tdx sections need no host_data/mrconfigid (stored and audited).",
        };
        var simSnp = Many("--sim-snp", "Simulated TEE measurement in SNP format, 48 bytes hex (repeatable).");
        var simSgx = Many("--sim-sgx", "Simulated TEE measurement in SGX format, 32 bytes hex (repeatable).");
        var command = new Command("register", "Create or update a function's registration.")
        {
            name, file, owners, policies, ttl, maxTtl, secretPath, snp, hostData, minimumTcb, sgx, tdx, rtmr1, rtmr2, mrConfigId, bindsWorkload, simSnp, simSgx,
        };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var spec = parse.GetValue(file) is { } f ? ReadSpec(f) : [];
            SetList(spec, "owners", parse.GetValue(owners));
            SetList(spec, "policies", parse.GetValue(policies));
            SetString(spec, "token_ttl", parse.GetValue(ttl));
            SetString(spec, "token_max_ttl", parse.GetValue(maxTtl));
            SetString(spec, "secret_path", parse.GetValue(secretPath));
            if (parse.GetValue(snp) is { Length: > 0 } measurements)
            {
                var section = Section(spec, "snp");
                SetList(section, "measurements", measurements);
                SetString(section, "host_data", parse.GetValue(hostData));
                if (parse.GetValue(minimumTcb) is { } tcb)
                {
                    // The flag overrides the file's choice either way: the KMS refuses a section with both.
                    if (string.Equals(tcb.Trim(), AnyTcb, StringComparison.OrdinalIgnoreCase))
                    {
                        section.Remove("minimum_tcb");
                        section[AnyTcbOptOut] = true;
                    }
                    else
                    {
                        section.Remove(AnyTcbOptOut);
                        section["minimum_tcb"] = MinimumTcb(tcb);
                    }
                }
            }
            else if (new[] { ("--snp-host-data", hostData), ("--snp-minimum-tcb", minimumTcb) }.FirstOrDefault(o => parse.GetValue(o.Item2) is not null) is (string flag, _))
            {
                throw KmsCliException.Usage($"{flag} needs --snp-measurement");
            }

            SetList(parse.GetValue(sgx) is { Length: > 0 } ? Section(spec, "sgx") : null, "mrenclaves", parse.GetValue(sgx));
            if (parse.GetValue(tdx) is { Length: > 0 } mrtds)
            {
                var section = Section(spec, "tdx");
                SetList(section, "mrtds", mrtds);
                SetString(section, "rtmr1", parse.GetValue(rtmr1));
                SetString(section, "rtmr2", parse.GetValue(rtmr2));
                SetString(section, "mrconfigid", parse.GetValue(mrConfigId));
            }
            else if (new[] { ("--tdx-rtmr1", rtmr1), ("--tdx-rtmr2", rtmr2), ("--tdx-mrconfigid", mrConfigId) }.FirstOrDefault(o => parse.GetValue(o.Item2) is not null) is (string flag, _))
            {
                throw KmsCliException.Usage($"{flag} needs --tdx-mrtd");
            }

            if (parse.GetValue(bindsWorkload))
            {
                // Only where it means something: the KMS would refuse it anywhere else as an unknown parameter.
                var sections = new[] { "snp", "tdx" }.Where(s => spec[s] is JsonObject).ToList();
                if (sections.Count == 0)
                {
                    throw KmsCliException.Usage("--launch-measurement-binds-workload needs an snp or tdx section (--snp-measurement, --tdx-mrtd or --file)");
                }

                sections.ForEach(s => spec[s]![WorkloadOptIn] = true);
            }
            SetList(parse.GetValue(simSnp) is { Length: > 0 } ? Section(spec, "simulated") : null, "snp", parse.GetValue(simSnp));
            SetList(parse.GetValue(simSgx) is { Length: > 0 } ? Section(spec, "simulated") : null, "sgx", parse.GetValue(simSgx));

            var functionName = parse.GetValue(name)!;
            var reply = await kms.SendAsync("PUT", "morphisms/functions/" + Uri.EscapeDataString(functionName), spec, ct);
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Data);
            }
            else if (reply.Data["pending_update"] is JsonObject pending)
            {
                // The KMS answers 200 with the record as it stands: nothing gated changed yet, so say what did happen.
                var what = reply.Data["deleted_time"] is null ? "the change" : "registering the deleted function again";
                await stdout.WriteLineAsync($"function {functionName}: {what} is pending update {pending["id"]}, awaiting {pending["approvals_remaining"]} owner approval(s) "
                    + $"(morphisms/functions/{functionName}/updates/{pending["id"]}/approve)");
            }
            else
            {
                await stdout.WriteLineAsync($"function {functionName} registered: revision {reply.Data["current_revision"]} active");
            }

            // On stderr whatever else is printed: e.g. an snp section with allow_any_tcb checks no firmware version.
            foreach (var warning in (reply.Body?["warnings"] as JsonArray ?? []).OfType<JsonValue>().Where(w => w.GetValueKind() == JsonValueKind.String))
            {
                await stderr.WriteLineAsync($"morph: warning from the KMS: {warning.GetValue<string>()}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    private const string WorkloadOptIn = "launch_measurement_binds_workload";

    /// <summary>The <c>--snp-minimum-tcb</c> value that sets <see cref="AnyTcbOptOut"/> instead of a floor.</summary>
    private const string AnyTcb = "any";

    private const string AnyTcbOptOut = "allow_any_tcb";

    /// <summary>The SPL fields of <c>snp.minimum_tcb</c>; fmc (Turin and later) is the only optional one.</summary>
    private static readonly string[] TcbRequired = ["bootloader", "tee", "snp", "microcode"];

    /// <summary>
    /// <c>bootloader=3,tee=0,snp=8,microcode=115[,fmc=N]</c> to the KMS's <c>minimum_tcb</c> object. All four SPLs are
    /// required here although the KMS reads a missing one as 0: a forgotten component would silently check nothing.
    /// </summary>
    private static JsonObject MinimumTcb(string value)
    {
        const string Shape = "bootloader=N,tee=N,snp=N,microcode=N[,fmc=N], each N 0-255, or any";
        var tcb = new JsonObject();
        foreach (var part in value.Split(','))
        {
            var pair = part.Split('=', 2);
            var key = pair[0].Trim().ToLowerInvariant();
            if (pair.Length != 2 || !(TcbRequired.Contains(key) || key == "fmc") || tcb.ContainsKey(key)
                || !byte.TryParse(pair[1].Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var spl))
            {
                throw KmsCliException.Usage($"--snp-minimum-tcb: '{part}' is not valid: expected {Shape}");
            }

            tcb[key] = spl;
        }

        return TcbRequired.FirstOrDefault(k => !tcb.ContainsKey(k)) is { } missing
            ? throw KmsCliException.Usage($"--snp-minimum-tcb: {missing} is missing: expected {Shape}")
            : tcb;
    }

    private static Option<string[]> Many(string name, string description) => new(name) { Description = description, AllowMultipleArgumentsPerToken = true };

    private static JsonObject ReadSpec(FileInfo file)
    {
        try
        {
            return JsonNode.Parse(BoundedInput.ReadFile(file.FullName, BoundedInput.DataLimit)) as JsonObject ?? throw KmsCliException.Usage($"--file: {file.FullName} is not a JSON object");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            throw KmsCliException.Usage($"--file: {e.Message}");
        }
    }

    private static JsonObject Section(JsonObject spec, string name)
    {
        if (spec[name] is JsonObject existing)
        {
            return existing;
        }

        var section = new JsonObject();
        spec[name] = section;
        return section;
    }

    private static void SetList(JsonObject? target, string name, string[]? values)
    {
        if (target is not null && values is { Length: > 0 })
        {
            target[name] = new JsonArray([.. values.Select(v => (JsonNode)v)]);
        }
    }

    private static void SetString(JsonObject target, string name, string? value)
    {
        if (value is not null)
        {
            target[name] = value;
        }
    }
}
