using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms init</c>: initialises a new KMS (<c>sys/init</c>) and shows the unseal key shares and the root token
/// once, or writes them to a new file readable only by the user.
/// </summary>
public static class KmsInitCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var shares = new Option<int>("--key-shares") { Description = "Number of unseal key shares.", DefaultValueFactory = _ => 5 };
        var threshold = new Option<int>("--key-threshold") { Description = "Shares needed to unseal.", DefaultValueFactory = _ => 3 };
        var output = new Option<FileInfo?>("--output") { Description = "Write the keys and root token to this new file (mode 0600) instead of printing them." };
        var command = new Command("init", "Initialise the KMS: generate the unseal key shares and the root token.") { shares, threshold, output };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            // The file is created before the KMS is initialised: keys that cannot be saved must never be generated.
            var file = parse.GetValue(output);
            await using var writer = file is null ? null : CreatePrivate(file.FullName);
            JsonObject body;
            try
            {
                body = (await kms.SendAsync("PUT", "sys/init", new JsonObject
                {
                    ["secret_shares"] = parse.GetValue(shares),
                    ["secret_threshold"] = parse.GetValue(threshold),
                }, ct, authenticated: false)).Body ?? [];
            }
            catch (KmsCliException) when (file is not null)
            {
                await writer!.DisposeAsync();
                File.Delete(file.FullName);
                throw;
            }

            if (writer is not null)
            {
                await writer.WriteAsync(body.ToJsonString());
                await writer.FlushAsync(ct);
                await stdout.WriteLineAsync($"initialised: {body["keys"]?.AsArray().Count ?? 0} unseal key shares and the root token written to {file!.FullName}");
                return ExitCodes.Ok;
            }

            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, body);
                return ExitCodes.Ok;
            }

            var i = 1;
            foreach (var key in body["keys_base64"]?.AsArray() ?? [])
            {
                await stdout.WriteLineAsync($"Unseal Key {i++}: {key}");
            }

            await stdout.WriteLineAsync($"Root Token: {body["root_token"]}");
            await stdout.WriteLineAsync();
            await stdout.WriteLineAsync($"Store the keys apart; {parse.GetValue(threshold)} of them unseal the KMS (morph kms unseal reads them from stdin or --key-file).");
            return ExitCodes.Ok;
        }, needsToken: false);
        return command;
    }

    private static StreamWriter CreatePrivate(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            return new StreamWriter(path, new System.Text.UTF8Encoding(false), options);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw KmsCliException.Usage($"--output: {e.Message}");
        }
    }
}
