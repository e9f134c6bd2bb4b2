using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// Reads secret input (unseal keys, secret data, a token to act on) from a file or standard input, never from the
/// command line, where any process on the machine could read it. When standard input is a terminal, a secret is read
/// without echo after a prompt on standard error, so what is typed or pasted never shows on the screen or in the
/// terminal's scrollback; a pipe or file is read as it is.
/// </summary>
internal static class SecretInput
{
    /// <summary>How messages name standard input.</summary>
    public const string StandardInput = "standard input";

    /// <summary>The terminal standard input may be; tests put a fake one here (<see cref="SecretTerminal"/>).</summary>
    internal static SecretTerminal Terminal { get; set; } = SecretTerminal.Console;

    /// <summary>
    /// The text of <paramref name="path"/>, or of standard input when it is null or <c>-</c>, at most
    /// <paramref name="limit"/> characters (<see cref="BoundedInput"/>). When standard input is a terminal and
    /// <paramref name="prompt"/> is given (the input is a secret), it is read without echo after that prompt.
    /// </summary>
    /// <exception cref="KmsCliException">The file cannot be read, or is larger than the limit (exit 2).</exception>
    public static string Read(string? path, string option, int limit = BoundedInput.DataLimit, HiddenPrompt? prompt = null)
    {
        try
        {
            return !IsStandardInput(path) ? BoundedInput.ReadFile(path, limit)
                : prompt is not null && Terminal.IsTerminal() ? ReadHidden(prompt, limit)
                : BoundedInput.Read(Console.In, StandardInput, limit);
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

    /// <summary>
    /// Reads from the terminal key by key without echo (the terminal's own line editing would echo): up to Enter for
    /// <see cref="HiddenPrompt.OneLine"/>, else up to Ctrl-D, with Backspace within the current line.
    /// </summary>
    /// <exception cref="IOException">More than <paramref name="limit"/> characters.</exception>
    private static string ReadHidden(HiddenPrompt prompt, int limit)
    {
        var output = Terminal.Prompt();
        output.Write(prompt.Text + (prompt.OneLine ? " (input hidden): " : " (input hidden; end with Ctrl-D): "));
        output.Flush();
        var text = new StringBuilder();
        try
        {
            while (true)
            {
                var key = Terminal.ReadKey();
                if (key.KeyChar == '\u0004' || (key.Key == ConsoleKey.D && key.Modifiers.HasFlag(ConsoleModifiers.Control)))
                {
                    break;
                }

                if (key.Key == ConsoleKey.Enter || key.KeyChar is '\r' or '\n')
                {
                    if (prompt.OneLine)
                    {
                        break;
                    }

                    text.Append('\n');
                }
                else if (key.Key == ConsoleKey.Backspace || key.KeyChar is '\b' or '\u007f')
                {
                    if (text.Length > 0 && text[^1] != '\n')
                    {
                        text.Length--;
                    }
                }
                else if (key.KeyChar != '\0')
                {
                    text.Append(key.KeyChar);
                }

                if (text.Length > limit)
                {
                    throw new IOException($"{StandardInput} is larger than {BoundedInput.Describe(limit)}");
                }
            }
        }
        finally
        {
            // The Enter that ended the input was not echoed either: end the prompt's line.
            output.WriteLine();
        }

        return text.ToString();
    }
}

/// <summary>What to ask for when a secret is read from a terminal.</summary>
/// <param name="Text">The prompt, e.g. <c>Unseal key share</c>; "(input hidden)" is added.</param>
/// <param name="OneLine">Whether Enter ends the input (a share, a token); else Ctrl-D does (JSON over several lines).</param>
internal sealed record HiddenPrompt(string Text, bool OneLine);

/// <summary>Standard input as a terminal: whether it is one, a key read without echo, and where prompts go.</summary>
/// <param name="IsTerminal">Whether standard input is a terminal (not a pipe or file).</param>
/// <param name="ReadKey">Reads one key without echoing it.</param>
/// <param name="Prompt">Where the prompt goes (standard error: standard output may be a pipe, and the prompt is for the person typing).</param>
internal sealed record SecretTerminal(Func<bool> IsTerminal, Func<ConsoleKeyInfo> ReadKey, Func<TextWriter> Prompt)
{
    /// <summary>The process's console.</summary>
    public static SecretTerminal Console { get; } = new(
        () => !System.Console.IsInputRedirected,
        () => System.Console.ReadKey(intercept: true),
        () => System.Console.Error);
}
