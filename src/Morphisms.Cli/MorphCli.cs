using System.CommandLine;
using Morphisms.Cli.Commands.Evidence;

namespace Morphisms.Cli;

/// <summary>Builds the <c>morph</c> command tree and runs it, mapping parse errors to exit code 2.</summary>
public static class MorphCli
{
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
            foreach (var error in parsed.Errors)
            {
                await stderr.WriteLineAsync($"morph: {error.Message}");
            }

            await stderr.WriteLineAsync("Run 'morph --help' for usage.");
            return ExitCodes.UsageOrInput;
        }

        // Ctrl-C cancels the command's token; morph up then drains instances and seals the KMS, which takes longer
        // than System.CommandLine's default grace of 2 s before it gives up waiting.
        var configuration = new InvocationConfiguration { Output = stdout, Error = stderr, ProcessTerminationTimeout = TimeSpan.FromSeconds(60) };
        return await parsed.InvokeAsync(configuration);
    }
}
