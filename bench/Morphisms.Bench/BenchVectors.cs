namespace Morphisms.Bench;

/// <summary>Finds the real-hardware vectors: MORPHISMS_TESTVECTORS, else shared/testvectors above the current directory.</summary>
internal static class BenchVectors
{
    public static string Root()
    {
        var root = Environment.GetEnvironmentVariable("MORPHISMS_TESTVECTORS");
        if (!string.IsNullOrWhiteSpace(root))
        {
            return root;
        }

        for (var dir = new DirectoryInfo(Environment.CurrentDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "testvectors");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("test vectors not found: set MORPHISMS_TESTVECTORS or run from the repository beside ../shared");
    }

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root(), .. parts]);
}
