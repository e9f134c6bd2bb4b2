using System.Collections.Concurrent;

namespace Morphisms.Serving.Routing;

/// <summary>All functions' routes, looked up by host name; replaced atomically per function.</summary>
public sealed class RouteTable
{
    private readonly ConcurrentDictionary<string, FunctionRoute> _byFunction = new(StringComparer.Ordinal);
    private volatile Dictionary<string, FunctionRoute> _byHost = new(StringComparer.OrdinalIgnoreCase);
    private readonly object _write = new();

    /// <summary>Sets (or replaces) a function's route.</summary>
    public void Set(FunctionRoute route)
    {
        lock (_write)
        {
            _byFunction[route.Function] = route;
            Rebuild();
        }
    }

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
