namespace Morphisms.Agent;

/// <summary>A failure that ends the agent with <see cref="ExitCode"/> and a message safe to log (no secret data).</summary>
public sealed class AgentException(int exitCode, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The process exit code (<see cref="AgentExitCodes"/>).</summary>
    public int ExitCode { get; } = exitCode;
}
