namespace Morphisms.Deploy.Manifests;

/// <summary>Shorthand for building the ordered maps <see cref="YamlText"/> writes.</summary>
public static class Map
{
    /// <summary>An ordered map of the given entries; null values are omitted when written.</summary>
    public static OrderedDictionary<string, object?> Of(params (string Key, object? Value)[] entries)
    {
        var map = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (key, value) in entries)
        {
            map.Add(key, value);
        }

        return map;
    }
}
