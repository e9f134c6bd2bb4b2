namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// Reads secret input (unseal keys, secret data, a token to act on) from a file or standard input, never from the
/// command line, where any process on the machine could read it.
/// </summary>
internal static class SecretInput
{
    /// <summary>
    /// The text of <paramref name="path"/>, or of standard input when it is null or <c>-</c>, at most
    /// <paramref name="limit"/> characters (<see cref="BoundedInput"/>).
    /// </summary>
    /// <exception cref="KmsCliException">The file cannot be read, or is larger than the limit (exit 2).</exception>
    public static string Read(string? path, string option, int limit = BoundedInput.DataLimit)
    {
        try
        {
            return path is null or "-" ? BoundedInput.Read(Console.In, "standard input", limit) : BoundedInput.ReadFile(path, limit);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw KmsCliException.Usage($"{option}: {e.Message}");
        }
    }

    /// <summary>The non-empty, non-comment lines of <paramref name="text"/>, trimmed.</summary>
    public static List<string> Lines(string text) =>
        [.. text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];
}
