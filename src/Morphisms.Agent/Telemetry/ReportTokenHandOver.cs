namespace Morphisms.Agent.Telemetry;

/// <summary>
/// Takes the cold-start report token <c>morph-init</c> was handed, leaving no copy of it where the app could look.
/// The serving host writes it to a 0600 file in the instance's own directory and names that file in
/// <see cref="AgentOptions.ReportTokenFileVariable"/>: an environment would not do, because under bubblewrap the
/// sandbox's PID 1 (bubblewrap's own init, which runs as the app's uid, dumpable, for the instance's whole life) keeps the
/// environment it was started with in <c>/proc/1/environ</c>, out of the non-dumpable agent's protection, and a
/// command line is readable by anyone. The file is read and deleted before the agent starts anything, so it is gone
/// before the app (started early or late) or the reload command exist. A token in
/// <see cref="AgentOptions.ReportTokenVariable"/> is still taken, for an agent started by hand without the sandbox: there
/// the agent's own <c>/proc/PID/environ</c> keeps it, and only the agent's non-dumpable flag keeps the app out of it.
/// </summary>
internal static class ReportTokenHandOver
{
    /// <summary>The variables that hand a token over: neither is for any process the agent starts.</summary>
    private static readonly string[] Variables = [AgentOptions.ReportTokenVariable, AgentOptions.ReportTokenFileVariable];

    /// <summary>Keeps the hand-over from a child's <paramref name="environment"/> (the app, the reload command).</summary>
    public static void RemoveFrom(IDictionary<string, string?> environment)
    {
        foreach (var name in Variables)
        {
            environment.Remove(name);
        }
    }

    /// <summary>
    /// Takes the token from this process's environment (removing both variables, so no child inherits them) or from the
    /// file it names (deleted once read). Null when neither is given.
    /// </summary>
    /// <exception cref="AgentException">Both are given, or the file cannot be read or deleted, or holds nothing.</exception>
    public static string? Take() =>
        Take(Environment.GetEnvironmentVariable, name => Environment.SetEnvironmentVariable(name, null));

    /// <summary><see cref="Take()"/> over an environment given as <paramref name="read"/> and <paramref name="remove"/>.</summary>
    public static string? Take(Func<string, string?> read, Action<string> remove)
    {
        var inline = read(AgentOptions.ReportTokenVariable);
        var file = read(AgentOptions.ReportTokenFileVariable);

        // Removed first: whatever fails below, the app must not inherit either.
        foreach (var name in Variables)
        {
            remove(name);
        }

        if (string.IsNullOrWhiteSpace(file))
        {
            return string.IsNullOrWhiteSpace(inline) ? null : inline.Trim();
        }

        // Read (and so deleted) even when refused below, so the file never outlives the agent's start.
        var token = FromFile(file);

        // Either could be stale or misplaced; guessing which one the serving host meant would post with the wrong one.
        return string.IsNullOrWhiteSpace(inline)
            ? token
            : throw new AgentException(
                AgentExitCodes.Usage,
                $"the report token is given both in {AgentOptions.ReportTokenVariable} and in the file {AgentOptions.ReportTokenFileVariable} names; give one");
    }

    /// <summary>The token in <paramref name="path"/>, which is deleted once read.</summary>
    /// <exception cref="AgentException">The file cannot be read or deleted, or holds nothing.</exception>
    public static string FromFile(string path)
    {
        string content;
        try
        {
            content = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AgentException(AgentExitCodes.Usage, $"cannot read the report token file {path} ({AgentOptions.ReportTokenFileVariable}): {e.Message}", e);
        }

        // A token file left behind would be read by the app, which the serving host shows this directory to: refuse to run.
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AgentException(AgentExitCodes.Usage, $"cannot delete the report token file {path} ({AgentOptions.ReportTokenFileVariable}) after reading it, so the app could read it: {e.Message}", e);
        }

        var token = content.Trim();
        return token.Length > 0
            ? token
            : throw new AgentException(AgentExitCodes.Usage, $"the report token file {path} ({AgentOptions.ReportTokenFileVariable}) is empty");
    }
}
