using System.CommandLine;

namespace Morphisms.Cli.Commands.Evidence;

/// <summary><c>morph evidence</c>: inspect and verify attestation evidence.</summary>
public static class EvidenceCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("evidence", "Inspect and verify SEV-SNP reports and SGX/TDX quotes.");
        command.Subcommands.Add(EvidenceVerifyCommand.Create(stdout, stderr));
        command.Subcommands.Add(EvidenceShowCommand.Create(stdout, stderr));
        command.Subcommands.Add(EvidenceDemoCommand.Create(stdout, stderr));
        return command;
    }
}
