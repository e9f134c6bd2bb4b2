using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms token renew [--increment D] [--accessor A | --stdin]</c>.</summary>
public static class KmsTokenRenewCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var target = new TokenTarget();
        var increment = new Option<string?>("--increment") { Description = "Requested extension, e.g. 30m (default: the token's original TTL)." };
        var command = new Command("renew", "Extend a token's TTL (the caller's own by default).") { increment };
        target.AddTo(command);
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var (path, body) = target.Resolve(parse, "renew");
            if (parse.GetValue(increment) is { Length: > 0 } by)
            {
                body!["increment"] = by;
            }

            var reply = await kms.SendAsync("POST", path, body, ct);
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Body);
                return ExitCodes.Ok;
            }

            var auth = reply.Body?["auth"];
            await stdout.WriteLineAsync($"renewed: {KmsAction.Seconds(auth?["lease_duration"])} left");
            foreach (var warning in reply.Body?["warnings"]?.AsArray() ?? [])
            {
                await stderr.WriteLineAsync($"warning: {warning}");
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
