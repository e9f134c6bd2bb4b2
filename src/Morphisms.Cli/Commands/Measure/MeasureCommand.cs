using System.CommandLine;

namespace Morphisms.Cli.Commands.Measure;

/// <summary><c>morph measure</c>: read the values a verifier registers from build artefacts.</summary>
public static class MeasureCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr) =>
        new("measure", "Compute reference values to register with the KMS from build artefacts.") { MeasureSgxCommand.Create(stdout, stderr) };
}
