namespace Morphisms.Testing;

/// <summary>
/// Locates the real-hardware test vectors: <c>MORPHISMS_TESTVECTORS</c>, else <c>../shared/testvectors</c>
/// next to the repository. They are never copied into the repository.
/// </summary>
public static class TestVectors
{
    private static readonly Lazy<string?> RootPath = new(Locate);

    /// <summary>The vectors directory, or null when absent.</summary>
    public static string? Root => RootPath.Value;

    /// <summary>The message tests skip with when vectors are absent.</summary>
    public const string MissingMessage =
        "test vectors not found: set MORPHISMS_TESTVECTORS or place them at ../shared/testvectors beside the repository";

    /// <summary>Full path of a vector file, e.g. <c>Path("snp", "gosevguest_milan_v2_report.bin")</c>.</summary>
    public static string Path(params string[] parts) =>
        System.IO.Path.Combine([Root ?? throw new InvalidOperationException(MissingMessage), .. parts]);

    /// <summary>Reads a vector file.</summary>
    public static byte[] Read(params string[] parts) => File.ReadAllBytes(Path(parts));

    private static string? Locate()
    {
        var env = Environment.GetEnvironmentVariable("MORPHISMS_TESTVECTORS");
        if (!string.IsNullOrWhiteSpace(env) && Directory.Exists(env))
        {
            return env;
        }

        var repositoryRoot = typeof(TestVectors).Assembly
            .GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .OfType<System.Reflection.AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "RepositoryRoot")?.Value;
        if (repositoryRoot is not null)
        {
            var beside = System.IO.Path.GetFullPath(System.IO.Path.Combine(repositoryRoot, "..", "shared", "testvectors"));
            if (Directory.Exists(beside))
            {
                return beside;
            }
        }

        // Walk up from the test binary to the repository root, then look beside it.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "testvectors");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }

            candidate = System.IO.Path.Combine(dir.FullName, "..", "shared", "testvectors");
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Morphisms.slnx")) && Directory.Exists(candidate))
            {
                return System.IO.Path.GetFullPath(candidate);
            }
        }

        return null;
    }
}

/// <summary>A fact that is skipped, with a clear message, when the test vectors are absent.</summary>
public sealed class VectorFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the vectors cannot be found.</summary>
    public VectorFactAttribute()
    {
        if (TestVectors.Root is null)
        {
            Skip = TestVectors.MissingMessage;
        }
    }
}

/// <summary>A theory that is skipped, with a clear message, when the test vectors are absent.</summary>
public sealed class VectorTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when the vectors cannot be found.</summary>
    public VectorTheoryAttribute()
    {
        if (TestVectors.Root is null)
        {
            Skip = TestVectors.MissingMessage;
        }
    }
}
