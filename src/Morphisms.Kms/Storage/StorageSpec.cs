namespace Morphisms.Kms.Storage;

/// <summary>
/// Parses the <c>--storage</c> specification: <c>sqlite:PATH</c>, <c>inmem</c>, or PostgreSQL as <c>postgres</c>
/// (connection string in the <c>MORPHISMS_KMS_PG</c> environment variable) or <c>postgres:file=PATH</c> (connection
/// string in a file). The connection string carries the password, so it never appears on a command line.
/// </summary>
public static class StorageSpec
{
    private const string PostgresFilePrefix = "postgres:file=";

    /// <summary>Opens the storage named by <paramref name="spec"/>.</summary>
    /// <exception cref="ArgumentException">The specification is not understood, or the connection string is missing or malformed.</exception>
    /// <exception cref="IOException">The connection string file cannot be read, or PostgreSQL cannot be reached.</exception>
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

        if (IsPostgres(spec))
        {
            return PostgresStorage.Open(PostgresConnectionString(spec));
        }

        throw new ArgumentException($"unsupported storage '{spec}': use sqlite:PATH, inmem, postgres (connection string in ${PostgresStorage.ConnectionStringVariable}) or postgres:file=PATH", nameof(spec));
    }

    /// <summary>Whether <paramref name="spec"/> names PostgreSQL storage (well-formed or not, it says nothing secret).</summary>
    public static bool IsPostgres(string spec) =>
        spec == "postgres" || (spec.StartsWith(PostgresFilePrefix, StringComparison.Ordinal) && spec.Length > PostgresFilePrefix.Length);

    /// <summary>The storage type Vault's seal-status reports: <c>sqlite</c>, <c>postgresql</c> or <c>inmem</c>.</summary>
    public static string TypeName(string spec) =>
        spec.StartsWith("sqlite:", StringComparison.Ordinal) ? "sqlite" : IsPostgres(spec) ? "postgresql" : "inmem";

    /// <summary>The SQLite file path of a <c>sqlite:PATH</c> specification, else null.</summary>
    public static string? SqlitePath(string spec) =>
        spec.StartsWith("sqlite:", StringComparison.Ordinal) ? Path.GetFullPath(spec["sqlite:".Length..]) : null;

    private static string PostgresConnectionString(string spec)
    {
        if (spec == "postgres")
        {
            return Environment.GetEnvironmentVariable(PostgresStorage.ConnectionStringVariable) is { Length: > 0 } fromEnvironment
                ? fromEnvironment
                : throw new ArgumentException($"--storage postgres reads the connection string from ${PostgresStorage.ConnectionStringVariable}, which is not set", nameof(spec));
        }

        var file = spec[PostgresFilePrefix.Length..];
        string text;
        try
        {
            text = File.ReadAllText(file).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot read the PostgreSQL connection string file {file}: {e.Message}", e);
        }

        return text.Length > 0 ? text : throw new ArgumentException($"the PostgreSQL connection string file {file} is empty", nameof(spec));
    }
}
