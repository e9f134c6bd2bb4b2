namespace Morphisms.Testing;

/// <summary>
/// What every project's <c>SecretRedactionTests</c> shares: a compiler-made record <c>ToString</c> prints every
/// property, so each record holding a secret must leave it out and still print the rest. The cases stay in each
/// project, beside the types they build.
/// </summary>
public static class Redaction
{
    /// <summary>The secret value the cases plant, to be looked for in what they print.</summary>
    public const string Marker = "marker-secret-7c41e09b";

    /// <summary>The names of <paramref name="cases"/>, as xUnit theory data.</summary>
    public static TheoryData<string> Names<T>(IReadOnlyDictionary<string, T> cases)
    {
        var data = new TheoryData<string>();
        foreach (var name in cases.Keys)
        {
            data.Add(name);
        }

        return data;
    }

    /// <summary>Asserts that <paramref name="holder"/>'s <c>ToString</c> leaves <paramref name="secret"/> out and keeps <paramref name="kept"/>.</summary>
    public static void AssertLeftOut(object holder, string secret, string kept)
    {
        var text = holder.ToString()!;
        Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
        Assert.Contains(kept, text, StringComparison.Ordinal);
    }
}
