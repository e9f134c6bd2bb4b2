using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;
using Morphisms.Cli.Commands.Evidence;

namespace Morphisms.Cli;

/// <summary>Builds the <c>morph</c> command tree and runs it, mapping parse errors to exit code 2.</summary>
public static class MorphCli
{
    // The integer types options take, with their ranges, to say what a value that does not convert should have been.
    private static readonly Dictionary<Type, (BigInteger Min, BigInteger Max)> Integers = new()
    {
        [typeof(int)] = (int.MinValue, int.MaxValue),
        [typeof(long)] = (long.MinValue, long.MaxValue),
        [typeof(ulong)] = (ulong.MinValue, ulong.MaxValue),
    };

    /// <summary>Creates the root command with every subcommand.</summary>
    public static RootCommand CreateRootCommand(TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("Morphisms: confidential serverless functions in TEEs (SEV-SNP, SGX, TDX).");
        root.Subcommands.Add(EvidenceCommand.Create(stdout, stderr));
        root.Subcommands.Add(Commands.Kms.KmsCommand.Create(stdout, stderr));
        Commands.Serving.ServingCommands.Create(stdout, stderr).ToList().ForEach(root.Subcommands.Add);
        root.Subcommands.Add(Commands.Up.UpCommand.Create(stdout, stderr));
        root.Subcommands.Add(Commands.Invoke.InvokeCommand.Create(stdout, stderr));
        root.Subcommands.Add(Commands.Quickstart.QuickstartCommand.Create(stdout, stderr));
        root.Subcommands.Add(Commands.Export.ExportCommand.Create(stdout, stderr));
        root.Subcommands.Add(Commands.Measure.MeasureCommand.Create(stdout, stderr));
        return root;
    }

    /// <summary>Parses and runs <paramref name="args"/>; usage errors print to stderr and return 2.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = CreateRootCommand(stdout, stderr);
        // No response files: System.CommandLine would otherwise expand any @TOKEN into the file's words before parsing,
        // which breaks `morph invoke --data @FILE` (a file's bytes, not its words) and crashes the process outright when
        // the token names a directory.
        var parsed = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parsed.Errors.Count > 0)
        {
            // Help is offered for the innermost command named: its options are the ones the error is about.
            var path = CommandPath(parsed.CommandResult);
            if (parsed.CommandResult.Command is { Action: null, Subcommands.Count: > 0 } && parsed.Tokens.All(t => t.Type == TokenType.Command))
            {
                // Only a group's name (`morph`, `morph kms`): it has nothing to run, so say what it offers, as git does.
                await root.Parse([.. path, "--help"]).InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
                return ExitCodes.UsageOrInput;
            }

            foreach (var error in parsed.Errors)
            {
                await stderr.WriteLineAsync($"morph: {Describe(error)}");
            }

            await stderr.WriteLineAsync($"Run '{string.Join(' ', ["morph", .. path])} --help' for usage.");
            return ExitCodes.UsageOrInput;
        }

        // Ctrl-C cancels the command's token; morph up then drains instances and seals the KMS, which takes longer
        // than System.CommandLine's default grace of 2 s before it gives up waiting.
        var configuration = new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = TimeSpan.FromSeconds(60) };
        return await parsed.InvokeAsync(configuration);
    }

    /// <summary>The names of the commands from the root's child down to <paramref name="command"/> (empty for the root).</summary>
    private static List<string> CommandPath(CommandResult command)
    {
        var names = new List<string>();
        for (var result = command; result.Parent is CommandResult parent; result = parent)
        {
            names.Insert(0, result.Command.Name);
        }

        return names;
    }

    /// <summary>
    /// The error's message, but for a value that does not convert to an option's integer type: System.CommandLine names
    /// the .NET type ("as expected type 'System.Int32'"), where the user needs the option as typed and what it takes.
    /// </summary>
    private static string Describe(ParseError error)
    {
        var (name, type, tokens) = error.SymbolResult switch
        {
            OptionResult { IdentifierToken: { } identifier } option => (identifier.Value, option.Option.ValueType, option.Tokens),
            ArgumentResult argument => ($"<{argument.Argument.Name}>", argument.Argument.ValueType, argument.Tokens),
            _ => (null, typeof(void), []),
        };
        type = Nullable.GetUnderlyingType(type) ?? (type.IsArray ? type.GetElementType()! : type);
        if (name is null || !Integers.TryGetValue(type, out var range))
        {
            return error.Message;
        }

        foreach (var token in tokens)
        {
            if (!BigInteger.TryParse(token.Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            {
                return $"{name} expects an integer, got '{token.Value}'";
            }

            if (value < range.Min || value > range.Max)
            {
                return string.Create(CultureInfo.InvariantCulture, $"{name} expects an integer from {range.Min} to {range.Max}, got '{token.Value}'");
            }
        }

        // Every value converts: the error is another one (a validator's, a missing value), and its message says which.
        return error.Message;
    }
}
