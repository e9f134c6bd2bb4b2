using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary><c>morph kms function</c>: the function registry (<c>morphisms/functions</c>): who may attest as which function.</summary>
public static class KmsFunctionCommand
{
    /// <summary>Creates the command group.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("function", "Register functions and their reference values (root or sudo).");
        command.Subcommands.Add(KmsFunctionRegisterCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsFunctionGetCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsFunctionListCommand.Create(stdout, stderr));
        command.Subcommands.Add(KmsFunctionDeleteCommand.Create(stdout, stderr));
        return command;
    }
}
