using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Attestation;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms init</c>: initialises a new KMS (<c>sys/init</c>) and shows the unseal key shares and the root token
/// once, or writes them to a new file readable only by the user. A KMS with auto-unseal (<c>recovery_seal</c> in
/// <c>sys/seal-status</c>) is asked for the shares as recovery keys, as Vault's init takes them there.
/// </summary>
public static class KmsInitCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var shares = new Option<int>("--key-shares") { Description = "Number of unseal key shares (recovery key shares when the KMS auto-unseals).", DefaultValueFactory = _ => 5 };
        var threshold = new Option<int>("--key-threshold") { Description = "Shares needed to unseal.", DefaultValueFactory = _ => 3 };
        var output = new Option<FileInfo?>("--output") { Description = "Write the keys and root token to this new file (mode 0600) instead of printing them." };
        var command = new Command("init", "Initialise the KMS: generate the unseal key shares and the root token.") { shares, threshold, output };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            // The file's name is taken before the KMS is initialised: keys that cannot be saved must never be generated.
            var file = parse.GetValue(output);
            if (file is not null)
            {
                Reserve(file.FullName);
            }

            KmsReply reply;
            string? recoverySeal;
            try
            {
                // With auto-unseal the KMS takes recovery_shares/recovery_threshold and refuses the Shamir pair, as Vault does.
                recoverySeal = RecoverySeal((await kms.SendAsync("GET", "sys/seal-status", null, ct, authenticated: false)).Body);
                var (sharesName, thresholdName) = recoverySeal is null ? ("secret_shares", "secret_threshold") : ("recovery_shares", "recovery_threshold");
                reply = await kms.SendAsync("PUT", "sys/init", new JsonObject
                {
                    [sharesName] = parse.GetValue(shares),
                    [thresholdName] = parse.GetValue(threshold),
                }, ct, authenticated: false);
            }
            catch when (file is not null)
            {
                // Still empty: nothing was generated, or nothing came back to save.
                TryDelete(file.FullName);
                throw;
            }

            // The reply is the only copy of the unseal keys and the root token: it is saved or printed as received, and only
            // looked at in ways that cannot throw, so a reply in an unexpected form is never lost to a parse error.
            var (keys, rootToken) = Read(reply.Body);
            await WarnAsync(stderr, reply.Body);
            if (file is not null)
            {
                try
                {
                    // Atomic (0600 temporary file, fsync, rename over the reserved name) and not cancellable: once the KMS is
                    // initialised, neither a full disk nor Ctrl-C may leave the keys half written or nowhere.
                    PrivateFile.Write(file.FullName, reply.Raw);
                }
                catch (FileNotDurableException e)
                {
                    // Written, but a power cut may still lose the name: the file stays, and the reply is printed too.
                    await stderr.WriteLineAsync($"morph: the KMS is initialised and {e.Message}: its reply is printed below as well: keep it, should the file be lost it is the ONLY copy of the unseal keys and the root token");
                    await PrintAsync(stdout, stderr, reply, keys, rootToken, json, parse.GetValue(threshold), recoverySeal);
                    return ExitCodes.UsageOrInput;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Printed instead: the KMS is initialised and will never show these again.
                    TryDelete(file.FullName);
                    await stderr.WriteLineAsync($"morph: the KMS is initialised, but {file.FullName} could not be written ({e.Message}): its reply is printed below instead, and it is the ONLY copy of the unseal keys and the root token: keep it");
                    await PrintAsync(stdout, stderr, reply, keys, rootToken, json, parse.GetValue(threshold), recoverySeal);
                    return ExitCodes.UsageOrInput;
                }

                if (keys is null || rootToken is null)
                {
                    await stderr.WriteLineAsync($"morph: the KMS's init reply is not in the expected form (keys_base64, root_token); it was written as received to {file.FullName}: keep it, it may hold the only copy of the keys");
                    return ExitCodes.Rejected;
                }

                await stdout.WriteLineAsync($"initialised: {keys.Count} {(recoverySeal is null ? "unseal" : "recovery")} key shares and the root token written to {file.FullName}");
                return ExitCodes.Ok;
            }

            return await PrintAsync(stdout, stderr, reply, keys, rootToken, json, parse.GetValue(threshold), recoverySeal);
        }, needsToken: false);
        return command;
    }

    /// <summary>The seal type when <c>sys/seal-status</c> says <c>recovery_seal</c> (auto-unseal), else null.</summary>
    private static string? RecoverySeal(JsonObject? status) =>
        status?["recovery_seal"] is JsonValue recovery && recovery.GetValueKind() == JsonValueKind.True
            ? status["type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String ? type.GetValue<string>() : "auto-unseal"
            : null;

    /// <summary>The key shares (base64) and root token of an init reply; null for either when it is missing or not a string.</summary>
    private static (IReadOnlyList<string>? Keys, string? RootToken) Read(JsonObject? body)
    {
        var keys = body?["keys_base64"] is JsonArray list && list.All(k => k is JsonValue v && v.GetValueKind() == JsonValueKind.String)
            ? list.Select(k => k!.GetValue<string>()).ToList()
            : null;
        var rootToken = body?["root_token"] is JsonValue token && token.GetValueKind() == JsonValueKind.String ? token.GetValue<string>() : null;
        return (keys, rootToken);
    }

    /// <summary>
    /// The KMS's <c>warnings</c>, on stderr whatever else is printed: with auto-unseal, an init whose unseal then failed
    /// still answers the keys, and says here that the KMS stayed sealed (<c>sealed: true</c>).
    /// </summary>
    private static async Task WarnAsync(TextWriter stderr, JsonObject? body)
    {
        if (body?["warnings"] is JsonArray warnings)
        {
            foreach (var warning in warnings.OfType<JsonValue>().Where(w => w.GetValueKind() == JsonValueKind.String))
            {
                await stderr.WriteLineAsync($"morph: warning from the KMS: {warning.GetValue<string>()}");
            }
        }

        if (body?["sealed"] is JsonValue sealedValue && sealedValue.GetValueKind() == JsonValueKind.True)
        {
            await stderr.WriteLineAsync("morph: the KMS is initialised but sealed: unseal it with a threshold of the key shares (morph kms unseal)");
        }
    }

    /// <summary>Prints the reply: the keys and root token, the JSON under <c>--json</c>, or the reply as received when malformed.</summary>
    private static async Task<int> PrintAsync(TextWriter stdout, TextWriter stderr, KmsReply reply, IReadOnlyList<string>? keys, string? rootToken, bool json, int threshold, string? recoverySeal)
    {
        if (json || keys is null || rootToken is null)
        {
            if (json && reply.Body is not null)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Body);
            }
            else
            {
                await stdout.WriteLineAsync(reply.Raw);
            }

            if (keys is null || rootToken is null)
            {
                await stderr.WriteLineAsync("morph: the KMS's init reply is not in the expected form (keys_base64, root_token); it is printed above as received: keep it, it may hold the only copy of the keys");
                return ExitCodes.Rejected;
            }

            return ExitCodes.Ok;
        }

        var i = 1;
        foreach (var key in keys)
        {
            await stdout.WriteLineAsync($"{(recoverySeal is null ? "Unseal" : "Recovery")} Key {i++}: {key}");
        }

        await stdout.WriteLineAsync($"Root Token: {rootToken}");
        await stdout.WriteLineAsync();
        await stdout.WriteLineAsync(recoverySeal is null
            ? $"Store the keys apart; {threshold} of them unseal the KMS (morph kms unseal reads them from stdin or --key-file)."
            : $"Store the keys apart, as carefully as unseal keys: the {recoverySeal} seal unseals the KMS at each start, but {threshold} of these keys unseal it without the seal (morph kms unseal), should it fail or its key be lost, and authorise a rekey.");
        return ExitCodes.Ok;
    }

    /// <summary>
    /// Creates <paramref name="path"/> empty, exclusively and mode 0600, before anything is generated: an existing file or
    /// a directory this user cannot write stops the command while the KMS is still uninitialised.
    /// </summary>
    private static void Reserve(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            new FileStream(path, options).Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A directory is "already exists" to CreateNew, which hides what is wrong with the path.
            throw KmsCliException.Usage($"--output: {(Directory.Exists(path) ? BoundedFile.NotAFile(path) : e.Message)}");
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The failure being reported matters more than an empty file left behind.
        }
    }
}
