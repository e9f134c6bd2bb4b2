namespace Morphisms.Cli.Commands.Kms;

/// <summary>A <c>morph kms</c> failure with the exit code it maps to and, when the KMS answered, its JSON body.</summary>
public sealed class KmsCliException : Exception
{
    /// <summary>Creates the failure.</summary>
    public KmsCliException(int exitCode, string message, string? body = null)
        : base(message)
    {
        ExitCode = exitCode;
        Body = body;
    }

    /// <summary>The process exit code (<see cref="ExitCodes"/>).</summary>
    public int ExitCode { get; }

    /// <summary>The KMS's error body, printed as is under <c>--json</c>.</summary>
    public string? Body { get; }

    /// <summary>A usage or input problem (exit 2).</summary>
    public static KmsCliException Usage(string message) => new(ExitCodes.UsageOrInput, message);
}
