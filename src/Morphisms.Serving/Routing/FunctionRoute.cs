using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Routing;

/// <summary>
/// A function's route: its host name splits traffic across revisions by percent, and each tag gets
/// a host name of its own that always reaches its revision (Knative's traffic block).
/// </summary>
public sealed class FunctionRoute
{
    private readonly int[] _cumulative;

    private FunctionRoute(string function, string domain, IReadOnlyList<TrafficTarget> targets)
    {
        Function = function;
        Domain = domain;
        Targets = targets;
        var weighted = targets.Where(t => t.Percent > 0).ToList();
        _cumulative = new int[weighted.Count];
        var sum = 0;
        for (var i = 0; i < weighted.Count; i++)
        {
            sum += weighted[i].Percent;
            _cumulative[i] = sum;
        }

        Weighted = weighted;
    }

    /// <summary>The function's name.</summary>
    public string Function { get; }

    /// <summary>The domain its host names live under.</summary>
    public string Domain { get; }

    /// <summary>The traffic block as given.</summary>
    public IReadOnlyList<TrafficTarget> Targets { get; }

    private IReadOnlyList<TrafficTarget> Weighted { get; }

    /// <summary>The main host name, <c>&lt;function&gt;.&lt;domain&gt;</c>.</summary>
    public string Host => $"{Function}.{Domain}";

    /// <summary>The host name of a tag.</summary>
    public string TagHost(string tag) => $"{TagLabel(tag, Function)}.{Domain}";

    /// <summary>Every host name the route answers: <see cref="Host"/> and its tags' hosts.</summary>
    public IEnumerable<string> Hosts => Targets.Where(t => t.Tag is not null).Select(t => TagHost(t.Tag!)).Prepend(Host);

    /// <summary>Builds a route after checking the traffic block; throws naming the problem.</summary>
    /// <exception cref="ArgumentException">Percentages do not sum to 100, a percentage or tag is invalid (a tag whose host label TAG-FUNCTION is over 63 characters too), or a tag repeats.</exception>
    public static FunctionRoute Create(string function, string domain, IReadOnlyList<TrafficTarget> targets)
    {
        if (targets.Count == 0)
        {
            throw new ArgumentException("traffic: at least one revision is needed");
        }

        if (targets.FirstOrDefault(t => t.Percent is < 0 or > 100) is { } bad)
        {
            throw new ArgumentException($"traffic: {bad.Revision} has percent {bad.Percent}, outside 0..100");
        }

        var total = targets.Sum(t => t.Percent);
        if (total != 100)
        {
            throw new ArgumentException($"traffic: percentages sum to {total}, not 100");
        }

        var tags = targets.Where(t => t.Tag is not null).Select(t => t.Tag!).ToList();
        if (tags.FirstOrDefault(t => !DnsLabel.IsValid(t)) is { } badTag)
        {
            throw new ArgumentException($"traffic: tag '{badTag}' is not a DNS label");
        }

        // A tag is served at TAG-FUNCTION.DOMAIN, so the tag and the function name share one DNS label: each may fit 63
        // characters alone and still make a host no resolver or SNI server_name takes.
        if (tags.FirstOrDefault(t => TagLabel(t, function).Length > DnsLabel.MaxLength) is { } longTag)
        {
            throw new ArgumentException($"traffic: tag '{longTag}' makes the host label '{TagLabel(longTag, function)}' {TagLabel(longTag, function).Length} characters long, "
                + $"over DNS's {DnsLabel.MaxLength} (a tag's host is TAG-FUNCTION.DOMAIN): use a tag of at most {Math.Max(0, DnsLabel.MaxLength - function.Length - 1)} characters");
        }

        if (tags.GroupBy(t => t, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } repeated)
        {
            throw new ArgumentException($"traffic: tag '{repeated.Key}' is used twice");
        }

        return new FunctionRoute(function, domain.ToLowerInvariant(), targets);
    }

    // The first label of a tag's host name.
    private static string TagLabel(string tag, string function) => $"{tag}-{function}";

    /// <summary>
    /// The revision for a request to <paramref name="host"/>: the tagged revision for a tag host, a
    /// weighted pick for the main host (<paramref name="roll"/> in [0, 100)), null for another host.
    /// </summary>
    public string? Pick(string host, int roll)
    {
        if (string.Equals(host, Host, StringComparison.OrdinalIgnoreCase))
        {
            for (var i = 0; i < _cumulative.Length; i++)
            {
                if (roll < _cumulative[i])
                {
                    return Weighted[i].Revision;
                }
            }

            return null;
        }

        return Targets.FirstOrDefault(t => t.Tag is not null && string.Equals(host, TagHost(t.Tag), StringComparison.OrdinalIgnoreCase))?.Revision;
    }
}
