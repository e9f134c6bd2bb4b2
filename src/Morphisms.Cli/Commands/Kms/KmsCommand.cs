using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms</c>: run and administer the KMS. Client commands take <c>--address</c> (default
/// <c>$MORPH_KMS_ADDR</c>, then the running <c>morph up</c>'s KMS) and the token from <c>$MORPH_KMS_TOKEN</c> or
/// <c>--token-file</c>; secrets (tokens, unseal keys, secret values) are never read from the command line.
/// </summary>
public static class KmsCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("kms", "Run and administer the KMS (a Vault-compatible key manager with attestation login).");
        command.Subcommands.Add(KmsServerCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsInitCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsUnsealCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsStatusCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsPolicyCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsTokenCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsKvCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsFunctionCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsAuditCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsTrustCommand.Create(stdout, stderr));
        return command;
    }
}
