using System.Collections.Concurrent;

namespace Morphisms.Serving.Routing;

/// <summary>
/// All functions' routes, looked up by host name; replaced atomically per function. A host name belongs to one function:
/// tag hosts are <c>TAG-FN.DOMAIN</c>, so function <c>api</c>'s tag <c>canary</c> and the function <c>canary-api</c>
/// would both answer <c>canary-api.DOMAIN</c>, and a route that claims another function's host is refused.
/// </summary>
public sealed class RouteTable
{
    private readonly ConcurrentDictionary<string, FunctionRoute> _byFunction = new(StringComparer.Ordinal);
    private volatile Dictionary<string, FunctionRoute> _byHost = new(StringComparer.OrdinalIgnoreCase);
    private readonly object _write = new();

    /// <summary>Sets (or replaces) a function's route.</summary>
    /// <exception cref="InvalidOperationException">One of its host names is another function's.</exception>
    public void Set(FunctionRoute route)
    {
        lock (_write)
        {
            if (route.Hosts.Select(h => (Host: h, By: ClaimedBy(h, route.Function))).FirstOrDefault(c => c.By is not null) is { By: { } other } clash)
            {
                throw new InvalidOperationException($"{clash.Host} is already a host of function {other}");
            }

            _byFunction[route.Function] = route;
            Rebuild();
        }
    }

    /// <summary>The function other than <paramref name="function"/> whose route answers <paramref name="host"/>, or null.</summary>
    public string? ClaimedBy(string host, string function) =>
        _byHost.TryGetValue(host, out var route) && !string.Equals(route.Function, function, StringComparison.Ordinal) ? route.Function : null;

    /// <summary>Removes a function's route.</summary>
    public void Remove(string function)
    {
        lock (_write)
        {
            _byFunction.TryRemove(function, out _);
            Rebuild();
        }
    }

    /// <summary>The revision that should serve a request to <paramref name="host"/>, or null when no route matches.</summary>
    public string? Resolve(string host) =>
        _byHost.TryGetValue(host, out var route) ? route.Pick(host, Random.Shared.Next(100)) : null;

    private void Rebuild()
    {
        var hosts = new Dictionary<string, FunctionRoute>(StringComparer.OrdinalIgnoreCase);
        foreach (var route in _byFunction.Values)
        {
            hosts[route.Host] = route;
            foreach (var target in route.Targets.Where(t => t.Tag is not null))
            {
                hosts[route.TagHost(target.Tag!)] = route;
            }
        }

        _byHost = hosts; // readers see the old or the new table, never a half-built one
    }
}
