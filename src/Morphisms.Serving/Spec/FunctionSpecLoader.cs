using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Morphisms.Attestation;
using Morphisms.Serving.Autoscaling;
using Morphisms.Serving.Runtime;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Morphisms.Serving.Spec;

/// <summary>
/// Reads a function spec from YAML strictly: unknown fields, wrong types and out-of-range values are
/// errors naming the field, because a typo in a security-relevant field must not be silently ignored.
/// </summary>
public static class FunctionSpecLoader
{
    /// <summary>The file name <c>morph deploy DIR</c> looks for.</summary>
    public const string FileName = "function.yaml";

    private const double MaxDurationSeconds = 366 * 24 * 3600;

    /// <summary>The largest spec read: a spec is a page of YAML, and the path comes from any control-API caller.</summary>
    internal const int MaxSpecBytes = 1024 * 1024;

    private static readonly IDeserializer Yaml = new DeserializerBuilder()
        .WithNamingConvention(CamelCaseNamingConvention.Instance)
        .Build();

    /// <summary>Loads <paramref name="path"/>: a spec file, or a directory holding <see cref="FileName"/>.</summary>
    /// <exception cref="FunctionSpecException">The spec is missing, unreadable or invalid.</exception>
    public static FunctionSpec Load(string path)
    {
        var file = Locate(path);

        // Not opened unless it is a regular file: the open of a FIFO waits for a writer (a control-API request would hang
        // on it), and a device may never end (the bounded read below stops /dev/zero where this check cannot run).
        if (BoundedFile.IsRegularFile(file) == false)
        {
            throw new FunctionSpecException($"cannot read the function spec {file}: not a regular file (a device, FIFO or socket)");
        }

        string yaml;
        try
        {
            if (!BoundedFile.TryReadAllBytes(file, MaxSpecBytes, out var bytes))
            {
                throw new FunctionSpecException($"cannot read the function spec {file}: larger than {MaxSpecBytes / (1024 * 1024)} MiB");
            }

            // As File.ReadAllText decoded it: UTF-8 unless a byte order mark names another encoding.
            using var reader = new StreamReader(new MemoryStream(bytes), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
            yaml = reader.ReadToEnd();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No permission, a socket or device in its place, an I/O error: the caller named a file that is not a spec
            // it can have, which the control API answers 400 (and the CLI exit 2), not as its own failure.
            throw new FunctionSpecException($"cannot read the function spec {file}: {e.Message}");
        }

        return Parse(yaml, Path.GetDirectoryName(Path.GetFullPath(file))!);
    }

    /// <summary>The spec file <see cref="Load"/> reads for <paramref name="path"/>, which must exist.</summary>
    /// <exception cref="FunctionSpecException">There is none (the message names where it was looked for).</exception>
    public static string Locate(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        return File.Exists(file) ? file : throw new FunctionSpecException($"no function spec at {file}");
    }

    /// <summary>Parses YAML; relative bundle paths are resolved against <paramref name="baseDirectory"/>.</summary>
    /// <exception cref="FunctionSpecException">The spec is invalid.</exception>
    public static FunctionSpec Parse(string yaml, string baseDirectory)
    {
        Document document;
        try
        {
            document = Yaml.Deserialize<Document?>(yaml) ?? throw new FunctionSpecException("the spec is empty");
        }
        catch (YamlException e)
        {
            throw new FunctionSpecException($"line {e.Start.Line}: {Describe(yaml, e)}");
        }

        var name = Required(document.Name, "name");
        if (!DnsLabel.IsValid(name))
        {
            throw new FunctionSpecException($"name: '{name}' is not a DNS label (lowercase letters, digits, '-')");
        }

        var bundle = Bundle(Path.GetFullPath(Path.Combine(baseDirectory, Required(document.Bundle, "bundle"))), baseDirectory);

        var command = document.Command ?? throw new FunctionSpecException("command: required");
        if (command.Count == 0 || command.Any(string.IsNullOrWhiteSpace))
        {
            throw new FunctionSpecException("command: needs a program and no empty arguments");
        }

        var scale = document.Scale ?? new ScaleDocument();
        var spec = new FunctionSpec
        {
            Name = name,
            Tee = ParseTee(document.Tee),
            Bundle = bundle,
            Command = command,
            Port = document.Port is { } port and (< 1 or > 65535) ? throw new FunctionSpecException($"port: {port} is not a TCP port") : document.Port ?? 8080,
            Env = ParseEnv(document.Env),
            // Pasted into the function's KMS policy (KmsRegistrar): nothing but plain segments may pass.
            Secrets = document.Secrets is { } secrets && !KvSecretPath.IsValid(secrets)
                ? throw new FunctionSpecException($"secrets: '{secrets}' is not {KvSecretPath.Description}")
                : document.Secrets,
            Scale = new ScaleSpec
            {
                Min = NonNegative(scale.Min, "scale.min") ?? 0,
                Max = NonNegative(scale.Max, "scale.max") ?? 0,
                Initial = NonNegative(scale.Initial, "scale.initial") ?? 1,
                // Negated, so that YAML's .nan fails too (it compares false with everything).
                Target = scale.Target is { } target && !(target > 0 && double.IsFinite(target)) ? throw new FunctionSpecException("scale.target: must be a positive number") : scale.Target ?? 100,
                TargetUtilization = scale.TargetUtilization is { } u && !(u is > 0 and <= 1) ? throw new FunctionSpecException("scale.targetUtilization: must be in (0, 1]") : scale.TargetUtilization ?? 0.7,
                ContainerConcurrency = NonNegative(scale.ContainerConcurrency, "scale.containerConcurrency") ?? 0,
                // The autoscaler's own bounds, checked here so that a spec it would refuse is refused before anything is deployed.
                StableWindow = Duration(scale.StableWindow, "scale.stableWindow", AutoscalerOptions.MinStableWindow, AutoscalerOptions.MaxStableWindow) ?? TimeSpan.FromSeconds(60),
                ScaleToZeroGracePeriod = Duration(scale.ScaleToZeroGracePeriod, "scale.scaleToZeroGracePeriod", TimeSpan.Zero, AutoscalerOptions.MaxScaleToZeroGracePeriod) ?? TimeSpan.FromSeconds(30),
                WarmPool = NonNegative(scale.WarmPool, "scale.warmPool") ?? 0,
            },
            Traffic = (document.Traffic ?? []).Select((t, i) => new TrafficSpec(
                Required(t.Revision, $"traffic[{i}].revision"),
                t.Percent ?? throw new FunctionSpecException($"traffic[{i}].percent: required"),
                t.Tag)).ToList(),
        };
        if (spec.Scale.Max > 0 && spec.Scale.Min > spec.Scale.Max)
        {
            throw new FunctionSpecException($"scale.min ({spec.Scale.Min}) exceeds scale.max ({spec.Scale.Max})");
        }

        // Whatever the checks above miss, the autoscaler would refuse at deploy, after the revision was made.
        if (AutoscalerLoop.OptionsFor(spec.Scale).Validate() is { } problem)
        {
            throw new FunctionSpecException($"scale: {problem}");
        }

        return spec;
    }

    /// <summary>
    /// Parses durations like <c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>, up to <see cref="MaxDuration"/>; false for
    /// anything else (<c>1e400s</c> is infinite and would overflow a <see cref="TimeSpan"/>).
    /// </summary>
    public static bool TryParseDuration(string text, out TimeSpan duration)
    {
        duration = default;
        var units = new (string Suffix, double Seconds)[] { ("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600) };
        foreach (var (suffix, seconds) in units)
        {
            if (text.EndsWith(suffix, StringComparison.Ordinal)
                && double.TryParse(text[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
                && value * seconds is >= 0 and <= MaxDurationSeconds && (suffix != "m" || !text.EndsWith("ms", StringComparison.Ordinal)))
            {
                duration = TimeSpan.FromSeconds(value * seconds);
                return true;
            }
        }

        return false;
    }

    /// <summary>The longest duration <see cref="TryParseDuration"/> accepts (a year; no setting needs more).</summary>
    public static TimeSpan MaxDuration => TimeSpan.FromSeconds(MaxDurationSeconds);

    private static FunctionTee ParseTee(string? tee) => tee?.ToLowerInvariant() switch
    {
        null or "sim" => FunctionTee.Sim,
        "snp" => FunctionTee.Snp,
        "sgx" => FunctionTee.Sgx,
        "tdx" => FunctionTee.Tdx,
        "none" => FunctionTee.None,
        _ => throw new FunctionSpecException($"tee: '{tee}' is not one of sim, snp, sgx, tdx, none"),
    };

    private static Dictionary<string, string> ParseEnv(Dictionary<string, string>? env)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in env ?? [])
        {
            if (key.Length == 0 || !(char.IsAsciiLetter(key[0]) || key[0] == '_') || !key.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
            {
                throw new FunctionSpecException($"env: '{key}' is not a valid variable name");
            }

            result[key] = value ?? string.Empty;
        }

        return result;
    }

    private static string Required(string? value, string field) =>
        string.IsNullOrWhiteSpace(value) ? throw new FunctionSpecException($"{field}: required") : value;

    private static int? NonNegative(int? value, string field) =>
        value is < 0 ? throw new FunctionSpecException($"{field}: must not be negative") : value;

    private static TimeSpan? Duration(string? text, string field, TimeSpan min, TimeSpan max) =>
        text is null ? null
        : !TryParseDuration(text, out var duration) ? throw new FunctionSpecException($"{field}: '{text}' is not a duration like 30s, 5m or 500ms")
        : duration < min || duration > max ? throw new FunctionSpecException($"{field}: '{text}' is not between {Format(min)} and {Format(max)}")
        : duration;

    private static string Format(TimeSpan duration) =>
        duration.TotalHours >= 1 && duration.TotalHours % 1 == 0 ? $"{duration.TotalHours:0}h" : $"{duration.TotalSeconds:0.###}s";

    /// <summary>
    /// The bundle's real path: the sandbox binds real paths only, and what is measured, bound and run must be one
    /// directory (a <c>bundle: ./publish</c> that is a symlink to the build output would otherwise be measured through
    /// the link at deploy and not found inside the sandbox at launch). Its own symlinks must stay inside it (<see cref="BundleLinks"/>).
    /// </summary>
    private static string Bundle(string path, string baseDirectory)
    {
        if (Posix.RealPath(path) is not { } real || !Directory.Exists(real))
        {
            throw new FunctionSpecException($"bundle: directory not found: {path} ({BuildHint(baseDirectory)})");
        }

        string? problem;
        try
        {
            problem = BundleLinks.Problem(real);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Changed or unreadable while it was walked: the spec's problem (a 400 naming it), not the host's.
            problem = e.Message;
        }

        return problem is null ? real : throw new FunctionSpecException($"bundle: {problem}");
    }

    // A bundle is a build output; this repository's samples (samples/NAME/function.yaml) are all built by samples/build.sh.
    private static string BuildHint(string baseDirectory) =>
        Path.GetDirectoryName(baseDirectory) is { } parent && Path.GetFileName(parent) == "samples" && File.Exists(Path.Combine(parent, "build.sh"))
            ? $"build it first: bash {Path.Combine(parent, "build.sh")}"
            : "build the function first: bundle names its build output";

    private static Exception Innermost(Exception e) => e.InnerException is { } inner ? Innermost(inner) : e;

    // YamlDotNet's messages name our private DTO types and .NET's parse errors ("The input string 'eighty' was not in a
    // correct format."); users need the field, what it takes and what they wrote.
    private static string Describe(string yaml, YamlException e)
    {
        var innermost = Innermost(e);
        if (Regex.Match(innermost.Message, "Property '([^']+)' not found") is { Success: true } unknown)
        {
            return $"unknown field '{unknown.Groups[1].Value}'";
        }

        if (e is SyntaxErrorException or SemanticErrorException)
        {
            // YamlDotNet's wording for the usual cause: a plain value such as `--flag: x` that YAML reads as a key.
            var hint = e.Message.Contains("found invalid mapping", StringComparison.Ordinal) ? " (quote a value that holds ': ')" : "";
            return $"not valid YAML{hint}: {e.Message}";
        }

        return FieldAt(yaml, e.Start) is var (field, got) && Expected(field) is { } expected
            ? $"{(field.Length == 0 ? "the spec" : field)}: expected {expected}, got {got}"
            : innermost.Message;
    }

    /// <summary>
    /// The field (<c>scale.min</c>, <c>traffic[0].percent</c>) whose value starts at <paramref name="mark"/>, and what that
    /// value is. Read from the parser's events with a stack of its own, not through a node tree: YamlDotNet builds
    /// those recursively, and a spec nested a hundred thousand deep would end the host with a stack overflow.
    /// </summary>
    private static (string Field, string Got)? FieldAt(string yaml, Mark mark)
    {
        var open = new Stack<Container>();
        try
        {
            var parser = new Parser(new StringReader(yaml));
            while (parser.MoveNext())
            {
                if (parser.Current is MappingEnd or SequenceEnd)
                {
                    open.Pop();
                    Completed(open);
                    continue;
                }

                if (parser.Current is not NodeEvent node)
                {
                    continue;
                }

                var parent = open.Count > 0 ? open.Peek() : null;
                var isKey = parent is { Mapping: true, ExpectKey: true };
                var field = parent is null ? "" : parent.Mapping ? Join(parent.Field, parent.Key) : $"{parent.Field}[{parent.Index}]";
                if (!isKey && node.Start.Index == mark.Index)
                {
                    return (field, Shown(node));
                }

                if (isKey)
                {
                    parent!.Key = (node as Scalar)?.Value ?? "?";
                }

                if (node is MappingStart or SequenceStart)
                {
                    open.Push(new Container(node is MappingStart, isKey ? "?" : field));
                }
                else
                {
                    Completed(open);
                }
            }
        }
        catch (YamlException)
        {
        }

        return null;

        // A key or value ended: a mapping waits for the other, a sequence for its next item.
        static void Completed(Stack<Container> open)
        {
            if (open.TryPeek(out var parent))
            {
                parent.ExpectKey = parent.Mapping && !parent.ExpectKey;
                parent.Index += parent.Mapping ? 0 : 1;
            }
        }

        static string Join(string parent, string key) => parent.Length == 0 ? key : $"{parent}.{key}";
    }

    private static string? Expected(string field) => Regex.Replace(field, @"\[\d+\]", "[]") switch
    {
        "" => "a mapping of the spec's fields (name, bundle, command, …)",
        "name" => "a DNS label (lowercase letters, digits, '-')",
        "tee" => "one of sim, snp, sgx, tdx, none",
        "bundle" => "a directory path",
        "command" => "a list of strings (the program and its arguments)",
        "port" => "an integer 1–65535",
        "env" => "a mapping of variable names to strings",
        "secrets" => KvSecretPath.Description,
        "scale" => "a mapping (min, max, initial, target, …)",
        "scale.min" or "scale.max" or "scale.initial" or "scale.containerConcurrency" or "scale.warmPool" => "a whole number, 0 or more",
        "scale.target" => "a positive number",
        "scale.targetUtilization" => "a number in (0, 1]",
        "scale.stableWindow" or "scale.scaleToZeroGracePeriod" => "a duration like 30s, 5m or 500ms",
        "traffic" => "a list of {revision, percent, tag}",
        "traffic[]" => "a mapping with revision, percent and tag",
        "traffic[].percent" => "a whole number 0–100",
        "command[]" or "traffic[].revision" or "traffic[].tag" => "a string",
        var other when other.StartsWith("env.", StringComparison.Ordinal) => "a string",
        _ => null,
    };

    private static string Shown(NodeEvent node) => node switch
    {
        Scalar { Value: var value } => value.Length > 60 ? $"'{value[..60]}…'" : $"'{value}'",
        SequenceStart => "a list",
        MappingStart => "a mapping",
        _ => "an alias",
    };

    // A mapping or sequence the parser is inside, for FieldAt.
    private sealed class Container(bool mapping, string field)
    {
        public bool Mapping { get; } = mapping;

        public string Field { get; } = field;

        public bool ExpectKey { get; set; } = mapping;

        public string Key { get; set; } = "";

        public int Index { get; set; }
    }

    // The YAML shape, kept apart from the validated spec so nothing unchecked leaks out.
    private sealed class Document
    {
        public string? Name { get; set; }
        public string? Tee { get; set; }
        public string? Bundle { get; set; }
        public List<string>? Command { get; set; }
        public int? Port { get; set; }
        public Dictionary<string, string>? Env { get; set; }
        public string? Secrets { get; set; }
        public ScaleDocument? Scale { get; set; }
        public List<TrafficDocument>? Traffic { get; set; }
    }

    private sealed class ScaleDocument
    {
        public int? Min { get; set; }
        public int? Max { get; set; }
        public int? Initial { get; set; }
        public double? Target { get; set; }
        public double? TargetUtilization { get; set; }
        public int? ContainerConcurrency { get; set; }
        public string? StableWindow { get; set; }
        public string? ScaleToZeroGracePeriod { get; set; }
        public int? WarmPool { get; set; }
    }

    private sealed class TrafficDocument
    {
        public string? Revision { get; set; }
        public int? Percent { get; set; }
        public string? Tag { get; set; }
    }
}
