using System.CommandLine;

namespace Morphisms.Cli.Commands.Serving;

/// <summary>The serving commands, all top-level: <c>morph deploy|ls|revisions|traffic|logs|rm</c>.</summary>
public static class ServingCommands
{
    /// <summary>Creates them.</summary>
    public static IEnumerable<Command> Create(TextWriter stdout, TextWriter stderr) =>
    [
        DeployCommand.Create(stdout, stderr),
        LsCommand.Create(stdout, stderr),
        RevisionsCommand.Create(stdout, stderr),
        TrafficCommand.Create(stdout, stderr),
        LogsCommand.Create(stdout, stderr),
        RmCommand.Create(stdout, stderr),
    ];
}
