using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms unseal</c>: submits unseal key shares, one per line, from <c>--key-file</c> or standard input (never
/// from the command line), until the KMS is unsealed. Exit 0 when the KMS took them — unsealed, or still sealed with the
/// progress and how many more shares are needed printed — and when <c>--reset</c> discarded the progress: each of the
/// threshold's holders in turn unseals with their own share, and only a refusal is a failure. Whether the KMS is
/// unsealed is <c>morph kms status</c>'s exit code.
/// </summary>
public static class KmsUnsealCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var keyFile = new Option<string?>("--key-file") { Description = "File with unseal key shares, one per line (hex or base64); '-' or absent: standard input." };
        var reset = new Option<bool>("--reset") { Description = "Discard the shares submitted so far instead." };
        var command = new Command("unseal", "Submit unseal key shares until the KMS is unsealed.") { keyFile, reset };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            JsonObject? status;
            if (parse.GetValue(reset))
            {
                status = (await kms.SendAsync("PUT", "sys/unseal", new JsonObject { ["reset"] = true }, ct, authenticated: false)).Body;
            }
            else
            {
                var file = parse.GetValue(keyFile);
                var text = SecretInput.Read(file, "--key-file", BoundedInput.SecretLimit, new HiddenPrompt("Unseal key share", OneLine: true));
                if (text.TrimStart().StartsWith('{'))
                {
                    throw NotShares(SecretInput.IsStandardInput(file) ? SecretInput.StandardInput : $"--key-file {file}", file);
                }

                var keys = SecretInput.Lines(text);
                if (keys.Count == 0)
                {
                    throw KmsCliException.Usage("no unseal key shares given: one per line on standard input or in --key-file");
                }

                status = null;
                foreach (var key in keys)
                {
                    status = (await kms.SendAsync("PUT", "sys/unseal", new JsonObject { ["key"] = key }, ct, authenticated: false)).Body;
                    if (status?["sealed"]?.GetValue<bool>() == false)
                    {
                        break;
                    }
                }
            }

            status ??= [];
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, status);
            }
            else
            {
                await KmsStatusCommand.PrintAsync(stdout, status);
                if (Progress(status) is { } progress)
                {
                    await stdout.WriteLineAsync(progress);
                }
            }

            // A share the KMS refuses (malformed, or a threshold that does not open the root key) is an error reply, and has
            // already left through KmsCliException: reaching here, every share was taken.
            return ExitCodes.Ok;
        }, needsToken: false);
        return command;
    }

    /// <summary>
    /// The refusal of a JSON object given as the shares: <c>morph kms init --output</c>'s file (<c>keys_base64</c>) or a dev
    /// KMS's key file (<c>unseal_key_base64</c>), whose lines would otherwise go to the KMS as shares, to be refused with a
    /// bare 400. It says how to take the shares out, never quoting the input.
    /// </summary>
    private static KmsCliException NotShares(string source, string? file)
    {
        var name = SecretInput.IsStandardInput(file) ? "init.json" : file;
        return KmsCliException.Usage($"{source}: JSON, not unseal key shares (`morph kms init --output` writes the shares as keys_base64, "
            + $"beside the root token): give the shares one per line, e.g. (umask 077; jq -r '.keys_base64[]' {name} > shares.txt) for all of them, "
            + $"or jq -r '.keys_base64[0]' {name} for the first holder's alone (a dev KMS's key file: jq -r .unseal_key_base64), on standard input or with --key-file");
    }

    /// <summary>
    /// While the KMS is sealed, how far unsealing has come (<c>2 of 3 shares; 1 more needed</c>), so a share holder who is
    /// not the last sees that their share counted; null once unsealed, or when the reply does not say.
    /// </summary>
    private static string? Progress(JsonObject status)
    {
        if (status["sealed"] is not JsonValue sealedValue || !sealedValue.TryGetValue<bool>(out var isSealed) || !isSealed
            || status["progress"] is not JsonValue progressValue || !progressValue.TryGetValue<int>(out var progress)
            || status["t"] is not JsonValue thresholdValue || !thresholdValue.TryGetValue<int>(out var threshold))
        {
            return null;
        }

        return $"still sealed: {progress} of {threshold} shares; {threshold - progress} more needed to unseal";
    }
}
