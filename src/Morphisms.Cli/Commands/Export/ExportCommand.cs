using System.CommandLine;

namespace Morphisms.Cli.Commands.Export;

/// <summary><c>morph export</c>: generate what runs Morphisms beyond one machine (Knative, Kubernetes, Gramine).</summary>
public static class ExportCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr) =>
        new("export", "Generate Kubernetes/Knative manifests and Gramine packaging.") { ExportKnativeCommand.Create(stdout, stderr), ExportKmsCommand.Create(stdout, stderr) };
}
