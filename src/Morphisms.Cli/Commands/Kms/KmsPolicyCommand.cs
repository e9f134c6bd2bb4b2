using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms policy</c>: ACL policies (<c>sys/policies/acl</c>).</summary>
public static class KmsPolicyCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("policy", "Write, read, list and delete ACL policies.");
        command.Subcommands.Add(KmsPolicyWriteCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsPolicyReadCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsPolicyListCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsPolicyDeleteCommand.Create(stdout, stderr));
        return command;
    }
}
