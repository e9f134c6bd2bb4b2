using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms kv</c>: KV v2 secrets.</summary>
public static class KmsKvCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("kv", "Put, get, delete, undelete and list KV v2 secrets (paths are MOUNT/KEY, e.g. secret/app).");
        command.Subcommands.Add(KmsKvPutCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsKvGetCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsKvDeleteCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsKvUndeleteCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsKvListCommand.Create(stdout, stderr));
        return command;
    }
}
