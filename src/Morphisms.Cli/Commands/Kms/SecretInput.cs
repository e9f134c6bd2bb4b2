using System.Diagnostics.CodeAnalysis;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// Reads secret input (unseal keys, secret data, a token to act on) from a file or standard input, never from the
/// command line, where any process on the machine could read it.
/// </summary>
internal static class SecretInput
{
    /// <summary>How messages name standard input.</summary>
    public const string StandardInput = "standard input";

    /// <summary>
    /// The text of <paramref name="path"/>, or of standard input when it is null or <c>-</c>, at most
    /// <paramref name="limit"/> characters (<see cref="BoundedInput"/>).
    /// </summary>
    /// <exception cref="KmsCliException">The file cannot be read, or is larger than the limit (exit 2).</exception>
    public static string Read(string? path, string option, int limit = BoundedInput.DataLimit)
    {
        try
        {
            return IsStandardInput(path) ? BoundedInput.Read(Console.In, StandardInput, limit) : BoundedInput.ReadFile(path, limit);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Standard input is read when the option is absent, so the message names it alone, not an option never given.
            throw KmsCliException.Usage(IsStandardInput(path) ? e.Message : $"{option}: {e.Message}");
        }
    }

    /// <summary>Whether <see cref="Read"/> reads standard input for <paramref name="path"/> (null or <c>-</c>).</summary>
    public static bool IsStandardInput([NotNullWhen(false)] string? path) => path is null or "-";

    /// <summary>The non-empty, non-comment lines of <paramref name="text"/>, trimmed.</summary>
    public static List<string> Lines(string text) =>
        [.. text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];
}
