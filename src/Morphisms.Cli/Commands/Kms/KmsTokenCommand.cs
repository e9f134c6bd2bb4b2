using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms token</c>: create, look up, renew and revoke tokens.</summary>
public static class KmsTokenCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("token", "Create, look up, renew and revoke tokens.");
        command.Subcommands.Add(KmsTokenCreateCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsTokenLookupCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsTokenRenewCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsTokenRevokeCommand.Create(stdout, stderr));
        return command;
    }
}
