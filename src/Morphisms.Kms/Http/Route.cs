using System.Diagnostics.CodeAnalysis;
using System.Text.RegularExpressions;

namespace Morphisms.Kms.Http;

/// <summary>Handles one operation on a matched route; null means 204 No Content.</summary>
internal delegate Task<KmsResponse?> RouteHandler(KmsRequest request, RouteMatch match, CancellationToken ct);

/// <summary>Decides whether a POST/PUT creates or updates (Vault's existence check).</summary>
internal delegate Task<bool> ExistenceCheck(KmsRequest request, RouteMatch match, CancellationToken ct);

/// <summary>One path pattern of a backend, like a Vault <c>framework.Path</c>.</summary>
internal sealed class Route
{
    public Route(string name, [StringSyntax(StringSyntaxAttribute.Regex)] string pattern)
    {
        Name = name;
        // \z, not $: $ also matches before a final newline.
        Pattern = new Regex("^" + pattern + "\\z", RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture, TimeSpan.FromMilliseconds(100));
    }

    /// <summary>A stable label, used as the metrics path class (never contains client-chosen text).</summary>
    public string Name { get; }

    /// <summary>The path pattern within the mount.</summary>
    public Regex Pattern { get; }

    /// <summary>The handlers by operation; a Create falls back to the Update handler.</summary>
    public Dictionary<Operation, RouteHandler> Handlers { get; } = [];

    /// <summary>Makes POST/PUT a Create when the resource does not exist; without it they are Updates.</summary>
    public ExistenceCheck? Existence { get; init; }

    /// <summary>Served without a token.</summary>
    public bool Unauthenticated { get; init; }

    /// <summary>Served while sealed (and before init).</summary>
    public bool AllowWhenSealed { get; init; }

    /// <summary>Root-protected: the ACL must also grant <c>sudo</c>.</summary>
    public bool Sudo { get; init; }

    /// <summary>Skips the ACL check because the handler authorises itself (e.g. token self-service paths).</summary>
    public bool HandlerAuthorizes { get; init; }

    /// <summary>The handler for <paramref name="operation"/>, if any.</summary>
    public RouteHandler? HandlerFor(Operation operation) =>
        Handlers.TryGetValue(operation, out var h) ? h
        : operation == Operation.Create && Handlers.TryGetValue(Operation.Update, out var u) ? u
        : null;
}

/// <summary>The named groups a route's pattern captured.</summary>
internal sealed class RouteMatch(Match match)
{
    /// <summary>A captured group, or empty.</summary>
    public string this[string group] => match.Groups[group].Success ? match.Groups[group].Value : "";
}

/// <summary>The routes of one backend.</summary>
internal sealed class RouteTable
{
    private readonly List<Route> _routes = [];

    /// <summary>Adds a route with handlers.</summary>
    public Route Add(Route route, params (Operation Op, RouteHandler Handler)[] handlers)
    {
        foreach (var (op, handler) in handlers)
        {
            route.Handlers[op] = handler;
        }

        _routes.Add(route);
        return route;
    }

    /// <summary>The first route whose pattern matches <paramref name="relativePath"/>.</summary>
    public (Route Route, RouteMatch Match)? Find(string relativePath)
    {
        foreach (var route in _routes)
        {
            var m = route.Pattern.Match(relativePath);
            if (m.Success)
            {
                return (route, new RouteMatch(m));
            }
        }

        return null;
    }
}

/// <summary>A mounted backend (sys, token auth, a KV v2 engine).</summary>
internal interface ILogicalBackend
{
    /// <summary>The backend type shown in sys/mounts and the envelope's <c>mount_type</c>.</summary>
    string Type { get; }

    /// <summary>The backend's routes.</summary>
    RouteTable Routes { get; }
}
