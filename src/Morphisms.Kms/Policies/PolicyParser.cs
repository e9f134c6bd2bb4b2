using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Morphisms.Kms.Policies;

/// <summary>
/// A strict parser for the subset of Vault's HCL policy language the KMS enforces:
/// <c>path "PATTERN" { capabilities = ["read", ...] }</c> blocks (and the legacy <c>policy = "read"</c>),
/// <c>#</c>, <c>//</c> and <c>/* */</c> comments, and the equivalent JSON form. Anything else is an error,
/// including Vault features this KMS does not enforce (parameter constraints, wrapping TTLs): ignoring them
/// would silently grant more than the author meant.
/// </summary>
internal static class PolicyParser
{
    private static readonly HashSet<string> Unsupported = new(StringComparer.Ordinal)
    {
        "allowed_parameters", "denied_parameters", "required_parameters", "min_wrapping_ttl", "max_wrapping_ttl",
        "control_group", "mfa_methods",
    };

    /// <summary>Parses <paramref name="text"/> as HCL or, when it starts with <c>{</c>, JSON.</summary>
    /// <exception cref="PolicyParseException">The text is not a valid policy.</exception>
    public static Policy Parse(string name, string text)
    {
        var rules = text.TrimStart().StartsWith('{') ? ParseJson(text) : new HclReader(text).ReadPolicy();
        var merged = new Dictionary<string, Capability>(StringComparer.Ordinal);
        foreach (var rule in rules)
        {
            merged[rule.Pattern] = merged.GetValueOrDefault(rule.Pattern) | rule.Capabilities;
        }

        return new Policy(name, text, [.. merged.Select(kv => new PathRule(kv.Key, kv.Value))]);
    }

    private static List<PathRule> ParseJson(string text)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new PolicyParseException($"invalid JSON policy: {e.Message}");
        }

        using (doc)
        {
            var rules = new List<PathRule>();
            foreach (var top in doc.RootElement.EnumerateObject())
            {
                if (top.Name != "path")
                {
                    throw new PolicyParseException($"unexpected key \"{top.Name}\": only \"path\" is allowed at the top level");
                }

                if (top.Value.ValueKind != JsonValueKind.Object)
                {
                    throw new PolicyParseException("\"path\" must be an object of pattern to rule");
                }

                foreach (var path in top.Value.EnumerateObject())
                {
                    if (path.Value.ValueKind != JsonValueKind.Object)
                    {
                        throw new PolicyParseException($"path \"{path.Name}\": the rule must be an object");
                    }

                    Capability caps = Capability.None;
                    var any = false;
                    foreach (var attr in path.Value.EnumerateObject())
                    {
                        any = true;
                        caps |= attr.Name switch
                        {
                            "capabilities" when attr.Value.ValueKind == JsonValueKind.Array =>
                                ParseCapabilityList(attr.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : throw new PolicyParseException($"path \"{path.Name}\": capabilities must be strings")), path.Name),
                            "policy" when attr.Value.ValueKind == JsonValueKind.String => Legacy(attr.Value.GetString()!, path.Name),
                            _ => throw UnknownKey(attr.Name, path.Name, null),
                        };
                    }

                    if (!any)
                    {
                        throw new PolicyParseException($"path \"{path.Name}\": no capabilities given");
                    }

                    rules.Add(new PathRule(ValidatePattern(path.Name, null), caps));
                }
            }

            return rules;
        }
    }

    internal static Capability ParseCapabilityList(IEnumerable<string> names, string path, int? line = null)
    {
        var caps = Capability.None;
        foreach (var n in names)
        {
            if (!Capabilities.TryParse(n, out var c))
            {
                throw new PolicyParseException($"{At(line)}path \"{path}\": invalid capability \"{n}\"");
            }

            caps |= c;
        }

        return caps;
    }

    internal static Capability Legacy(string value, string path, int? line = null) =>
        Capabilities.FromLegacy(value) ?? throw new PolicyParseException($"{At(line)}path \"{path}\": invalid policy \"{value}\"");

    internal static PolicyParseException UnknownKey(string key, string path, int? line) =>
        Unsupported.Contains(key)
            ? new PolicyParseException($"{At(line)}path \"{path}\": \"{key}\" is not supported by this KMS (ignoring it could grant more than intended)")
            : new PolicyParseException($"{At(line)}path \"{path}\": unknown key \"{key}\"");

    internal static string ValidatePattern(string pattern, int? line)
    {
        var p = pattern.TrimStart('/');
        if (p.Length == 0 && pattern.Length > 0)
        {
            throw new PolicyParseException($"{At(line)}path \"{pattern}\" is empty");
        }

        if (p.Contains("{{", StringComparison.Ordinal))
        {
            throw new PolicyParseException($"{At(line)}path \"{pattern}\": templated policies are not supported");
        }

        var star = p.IndexOf('*');
        if (star >= 0 && star != p.Length - 1)
        {
            throw new PolicyParseException($"{At(line)}path \"{pattern}\": '*' is only allowed at the end");
        }

        return p;
    }

    internal static string At(int? line) => line is null ? "" : string.Create(CultureInfo.InvariantCulture, $"line {line}: ");

    /// <summary>A hand-written tokenizer and recursive-descent reader for the HCL subset.</summary>
    private sealed class HclReader(string text)
    {
        private int _pos;
        private int _line = 1;

        public List<PathRule> ReadPolicy()
        {
            var rules = new List<PathRule>();
            while (true)
            {
                var token = Next();
                if (token.Kind == TokenKind.End)
                {
                    return rules;
                }

                if (token.Kind != TokenKind.Ident)
                {
                    throw Error(token, "expected a \"path\" block");
                }

                if (token.Text != "path")
                {
                    throw Error(token, $"unexpected key \"{token.Text}\": only \"path\" blocks are allowed");
                }

                var pattern = Expect(TokenKind.String, "a quoted path after \"path\"");
                var open = Next();
                if (open.Kind == TokenKind.Equals)
                {
                    open = Next();
                }

                if (open.Kind != TokenKind.LBrace)
                {
                    throw Error(open, "expected '{' after the path");
                }

                rules.Add(ReadBlock(pattern));
            }
        }

        private PathRule ReadBlock(Token pattern)
        {
            var caps = Capability.None;
            var any = false;
            while (true)
            {
                var token = Next();
                if (token.Kind == TokenKind.RBrace)
                {
                    break;
                }

                if (token.Kind != TokenKind.Ident)
                {
                    throw Error(token, "expected a key or '}'");
                }

                Expect(TokenKind.Equals, $"'=' after \"{token.Text}\"");
                switch (token.Text)
                {
                    case "capabilities":
                        caps |= ParseCapabilityList(ReadStringList(), pattern.Text, token.Line);
                        break;
                    case "policy":
                        caps |= Legacy(Expect(TokenKind.String, "a quoted policy").Text, pattern.Text, token.Line);
                        break;
                    default:
                        throw UnknownKey(token.Text, pattern.Text, token.Line);
                }

                any = true;
                if (Peek().Kind == TokenKind.Comma)
                {
                    Next();
                }
            }

            if (!any)
            {
                throw new PolicyParseException($"{At(pattern.Line)}path \"{pattern.Text}\": no capabilities given");
            }

            return new PathRule(ValidatePattern(pattern.Text, pattern.Line), caps);
        }

        private List<string> ReadStringList()
        {
            Expect(TokenKind.LBracket, "'[' to start the capability list");
            var items = new List<string>();
            while (true)
            {
                var token = Next();
                if (token.Kind == TokenKind.RBracket)
                {
                    return items;
                }

                if (token.Kind != TokenKind.String)
                {
                    throw Error(token, "expected a quoted capability or ']'");
                }

                items.Add(token.Text);
                var sep = Next();
                if (sep.Kind == TokenKind.RBracket)
                {
                    return items;
                }

                if (sep.Kind != TokenKind.Comma)
                {
                    throw Error(sep, "expected ',' or ']' in the list");
                }
            }
        }

        private Token Expect(TokenKind kind, string what)
        {
            var token = Next();
            return token.Kind == kind ? token : throw Error(token, $"expected {what}");
        }

        private Token Peek()
        {
            var (pos, line) = (_pos, _line);
            var token = Next();
            (_pos, _line) = (pos, line);
            return token;
        }

        private Token Next()
        {
            SkipTrivia();
            if (_pos >= text.Length)
            {
                return new Token(TokenKind.End, "", _line);
            }

            var c = text[_pos];
            var line = _line;
            switch (c)
            {
                case '{': _pos++; return new Token(TokenKind.LBrace, "{", line);
                case '}': _pos++; return new Token(TokenKind.RBrace, "}", line);
                case '[': _pos++; return new Token(TokenKind.LBracket, "[", line);
                case ']': _pos++; return new Token(TokenKind.RBracket, "]", line);
                case ',': _pos++; return new Token(TokenKind.Comma, ",", line);
                case '=': _pos++; return new Token(TokenKind.Equals, "=", line);
                case '"': return ReadString();
            }

            if (char.IsAsciiLetter(c) || c == '_')
            {
                var start = _pos;
                while (_pos < text.Length && (char.IsAsciiLetterOrDigit(text[_pos]) || text[_pos] is '_' or '-'))
                {
                    _pos++;
                }

                return new Token(TokenKind.Ident, text[start.._pos], line);
            }

            if (c == '<' && _pos + 1 < text.Length && text[_pos + 1] == '<')
            {
                throw new PolicyParseException($"line {line}: heredoc strings are not supported");
            }

            throw new PolicyParseException($"line {line}: unexpected character '{c}'");
        }

        private Token ReadString()
        {
            var line = _line;
            _pos++;
            var sb = new StringBuilder();
            while (true)
            {
                if (_pos >= text.Length || text[_pos] == '\n')
                {
                    throw new PolicyParseException($"line {line}: unterminated string");
                }

                var c = text[_pos++];
                if (c == '"')
                {
                    return new Token(TokenKind.String, sb.ToString(), line);
                }

                if (c != '\\')
                {
                    sb.Append(c);
                    continue;
                }

                if (_pos >= text.Length)
                {
                    throw new PolicyParseException($"line {line}: unterminated string");
                }

                var e = text[_pos++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case 'u' when _pos + 4 <= text.Length && ushort.TryParse(text.AsSpan(_pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var code):
                        sb.Append((char)code);
                        _pos += 4;
                        break;
                    default:
                        throw new PolicyParseException($"line {line}: invalid escape '\\{e}' in string");
                }
            }
        }

        private void SkipTrivia()
        {
            while (_pos < text.Length)
            {
                var c = text[_pos];
                if (c == '\n')
                {
                    _line++;
                    _pos++;
                }
                else if (char.IsWhiteSpace(c))
                {
                    _pos++;
                }
                else if (c == '#' || (c == '/' && _pos + 1 < text.Length && text[_pos + 1] == '/'))
                {
                    while (_pos < text.Length && text[_pos] != '\n')
                    {
                        _pos++;
                    }
                }
                else if (c == '/' && _pos + 1 < text.Length && text[_pos + 1] == '*')
                {
                    var startLine = _line;
                    var end = text.IndexOf("*/", _pos + 2, StringComparison.Ordinal);
                    if (end < 0)
                    {
                        throw new PolicyParseException($"line {startLine}: unterminated comment");
                    }

                    _line += text.AsSpan(_pos, end - _pos).Count('\n');
                    _pos = end + 2;
                }
                else
                {
                    return;
                }
            }
        }

        private static PolicyParseException Error(Token token, string message) =>
            new($"line {token.Line}: {message}, found {(token.Kind == TokenKind.End ? "end of input" : $"'{token.Text}'")}");
    }

    private enum TokenKind
    {
        End,
        Ident,
        String,
        LBrace,
        RBrace,
        LBracket,
        RBracket,
        Comma,
        Equals,
    }

    private readonly record struct Token(TokenKind Kind, string Text, int Line);
}
