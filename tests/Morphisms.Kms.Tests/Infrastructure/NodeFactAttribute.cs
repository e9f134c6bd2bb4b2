namespace Morphisms.Kms.Tests;

/// <summary>A fact skipped, with a clear message, when <c>node</c> is not on PATH.</summary>
public sealed class NodeFactAttribute : FactAttribute
{
    /// <summary>The message the test is skipped with.</summary>
    public const string MissingMessage = "node is not installed: the node-vault compatibility test needs Node.js and npm on PATH";

    /// <summary>Sets <see cref="FactAttribute.Skip"/> when node cannot be found.</summary>
    public NodeFactAttribute()
    {
        if (Find("node") is null)
        {
            Skip = MissingMessage;
        }
    }

    /// <summary>The full path of an executable on PATH, or null.</summary>
    public static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}
