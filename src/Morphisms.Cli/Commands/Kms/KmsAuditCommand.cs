using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms audit</c>: audit log tools.</summary>
public static class KmsAuditCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("audit", "Check the KMS's hash-chained audit log.");
        command.Subcommands.Add(KmsAuditVerifyCommand.Create(stdout, stderr));
        return command;
    }
}
