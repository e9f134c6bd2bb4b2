using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms policy read NAME</c>: prints a policy's text.</summary>
public static class KmsPolicyReadCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var name = new Argument<string>("name") { Description = "Policy name." };
        var command = new Command("read", "Print a policy.") { name };
        KmsAction.Set(command, stdout, stderr, async (parse, kms, json, ct) =>
        {
            var reply = await kms.SendAsync("GET", "sys/policies/acl/" + Uri.EscapeDataString(parse.GetValue(name)!), null, ct);
            if (json)
            {
                await KmsAction.PrintJsonAsync(stdout, reply.Data);
            }
            else
            {
                await stdout.WriteLineAsync(reply.Data["policy"]?.ToString());
            }

            return ExitCodes.Ok;
        });
        return command;
    }
}
