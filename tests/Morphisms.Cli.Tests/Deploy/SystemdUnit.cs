using System.Text;
using System.Text.RegularExpressions;

namespace Morphisms.Cli.Tests.Deploy;

/// <summary>
/// The [Service] settings of a systemd unit and its drop-ins, read as systemd reads them for what the deploy tests
/// check: comments, backslash-continued lines, an empty <c>ExecStart=</c> clearing the ones before it, quoting, the
/// %-specifiers a system service uses, and <c>${VAR}</c> / <c>$VAR</c> in the command line (systemd.service(5),
/// "Command lines"; systemd.unit(5), "Specifiers"). Anything else (another specifier, a prefix like <c>-</c> or
/// <c>+</c>, more than one ExecStart) fails the test rather than be read wrongly.
/// </summary>
public sealed partial class SystemdUnit
{
    private readonly List<(string Key, string Value)> _service = [];

    private SystemdUnit(string name) => Name = name;

    /// <summary>The unit's name, e.g. <c>morph-kms.service</c>.</summary>
    public string Name { get; }

    /// <summary>The [Service] section's ExecStart in effect (the last after an empty one), unexpanded.</summary>
    public string ExecStart
    {
        get
        {
            var starts = new List<string>();
            foreach (var (key, value) in _service.Where(e => e.Key == "ExecStart"))
            {
                if (value.Length == 0)
                {
                    starts.Clear();
                }
                else
                {
                    starts.Add(value);
                }
            }

            Assert.True(starts.Count == 1, $"{Name}: expected one ExecStart in effect, found {starts.Count}");
            return starts[0];
        }
    }

    /// <summary>Every value of a [Service] key, in file order (unit first, then drop-ins).</summary>
    public IReadOnlyList<string> Values(string key) => [.. _service.Where(e => e.Key == key).Select(e => e.Value)];

    /// <summary>Reads <paramref name="unitFile"/> and then each drop-in, as systemd merges them.</summary>
    public static SystemdUnit Load(string unitFile, params string[] dropIns)
    {
        var unit = new SystemdUnit(Path.GetFileName(unitFile));
        foreach (var file in (string[])[unitFile, .. dropIns])
        {
            unit.Read(file);
        }

        return unit;
    }

    /// <summary>
    /// The argv systemd runs: ExecStart split into words, specifiers expanded per word with <paramref name="specifiers"/>
    /// (letter → value; <c>%%</c> is always <c>%</c>), then <c>${VAR}</c> replaced inside a word and a word that is
    /// exactly <c>$VAR</c> split at whitespace (nothing when empty), from <paramref name="environment"/>.
    /// </summary>
    public IReadOnlyList<string> ExpandExecStart(IReadOnlyDictionary<char, string> specifiers, IReadOnlyDictionary<string, string> environment)
    {
        var argv = new List<string>();
        foreach (var word in Words(ExecStart))
        {
            var expanded = Specifiers(word, specifiers);
            if (UnbracedVariable().Match(expanded) is { Success: true } whole)
            {
                argv.AddRange(environment.GetValueOrDefault(whole.Groups[1].Value, "").Split([' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));
                continue;
            }

            argv.Add(BracedVariable().Replace(expanded.Replace("$$", "\0", StringComparison.Ordinal), m => environment.GetValueOrDefault(m.Groups[1].Value, ""))
                .Replace("\0", "$", StringComparison.Ordinal));
        }

        Assert.False(argv.Count == 0 || "-@:+!".Contains(argv[0][0], StringComparison.Ordinal), $"{Name}: ExecStart has no program or a prefix this reader does not model: {ExecStart}");
        return argv;
    }

    /// <summary>The <c>Environment=</c> assignments, specifiers expanded.</summary>
    public IReadOnlyDictionary<string, string> Environment(IReadOnlyDictionary<char, string> specifiers)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var assignment in Values("Environment").SelectMany(Words))
        {
            var equals = assignment.IndexOf('=', StringComparison.Ordinal);
            Assert.True(equals > 0, $"{Name}: Environment={assignment} is not NAME=VALUE");
            environment[assignment[..equals]] = Specifiers(assignment[(equals + 1)..], specifiers);
        }

        return environment;
    }

    /// <summary>An EnvironmentFile as systemd reads it: NAME=VALUE lines, # and ; comments, optional quotes around the value.</summary>
    public static Dictionary<string, string> ReadEnvironmentFile(string path)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in File.ReadAllLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            var equals = line.IndexOf('=', StringComparison.Ordinal);
            Assert.True(equals > 0, $"{path}: '{line}' is not NAME=VALUE");
            var value = line[(equals + 1)..].Trim();
            environment[line[..equals].Trim()] = value.Length >= 2 && value[0] is '"' or '\'' && value[^1] == value[0] ? value[1..^1] : value;
        }

        return environment;
    }

    private void Read(string file)
    {
        var section = "";
        var lines = File.ReadAllLines(file);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            // A trailing backslash joins the next line, the backslash becoming a space.
            while (line.EndsWith('\\') && i + 1 < lines.Length)
            {
                line = line[..^1] + " " + lines[++i].Trim();
            }

            if (line.StartsWith('[') && line.EndsWith(']'))
            {
                section = line[1..^1];
                continue;
            }

            var equals = line.IndexOf('=', StringComparison.Ordinal);
            Assert.True(equals > 0, $"{file}: '{line}' is not KEY=VALUE");
            if (section == "Service")
            {
                _service.Add((line[..equals].Trim(), line[(equals + 1)..].Trim()));
            }
        }
    }

    /// <summary>systemd's word splitting: whitespace separates, "…" and '…' quote, a backslash escapes the next character.</summary>
    private static List<string> Words(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        char? quote = null;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\\' && i + 1 < text.Length)
            {
                word.Append(text[++i]);
                inWord = true;
            }
            else if (quote is not null)
            {
                if (c == quote)
                {
                    quote = null;
                }
                else
                {
                    word.Append(c);
                }
            }
            else if (c is '"' or '\'')
            {
                quote = c;
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                }
            }
            else
            {
                word.Append(c);
                inWord = true;
            }
        }

        Assert.True(quote is null, $"unterminated quote in: {text}");
        if (inWord)
        {
            words.Add(word.ToString());
        }

        return words;
    }

    private string Specifiers(string word, IReadOnlyDictionary<char, string> specifiers)
    {
        var result = new StringBuilder();
        for (var i = 0; i < word.Length; i++)
        {
            if (word[i] != '%')
            {
                result.Append(word[i]);
                continue;
            }

            Assert.True(i + 1 < word.Length, $"{Name}: a lone % ends '{word}'");
            var letter = word[++i];
            if (letter == '%')
            {
                result.Append('%');
            }
            else
            {
                Assert.True(specifiers.TryGetValue(letter, out var value), $"{Name}: specifier %{letter} in '{word}' is not one this test models");
                result.Append(value);
            }
        }

        return result.ToString();
    }

    [GeneratedRegex(@"^\$([A-Za-z_][A-Za-z0-9_]*)$")]
    private static partial Regex UnbracedVariable();

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex BracedVariable();
}
