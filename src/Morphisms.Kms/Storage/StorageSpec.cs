namespace Morphisms.Kms.Storage;

/// <summary>Parses the <c>--storage</c> specification: <c>sqlite:PATH</c> or <c>inmem</c>.</summary>
public static class StorageSpec
{
    /// <summary>Opens the storage named by <paramref name="spec"/>.</summary>
    /// <exception cref="ArgumentException">The specification is not understood.</exception>
    public static IPhysicalStorage Open(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        if (spec == "inmem")
        {
            return new InMemoryStorage();
        }

        if (spec.StartsWith("sqlite:", StringComparison.Ordinal) && spec.Length > "sqlite:".Length)
        {
            return SqliteStorage.Open(spec["sqlite:".Length..]);
        }

        throw new ArgumentException($"unsupported storage '{spec}': use sqlite:PATH or inmem", nameof(spec));
    }

    /// <summary>The SQLite file path of a <c>sqlite:PATH</c> specification, else null.</summary>
    public static string? SqlitePath(string spec) =>
        spec.StartsWith("sqlite:", StringComparison.Ordinal) ? Path.GetFullPath(spec["sqlite:".Length..]) : null;
}
