namespace Morphisms.Deploy.Manifests;

/// <summary>
/// Kubernetes' variable references in a container's <c>command</c>, <c>args</c> and <c>env</c> values: the kubelet
/// replaces <c>$(NAME)</c> with the variable's value and <c>$$</c> with <c>$</c> before the runtime sees the process.
/// An export that wants a value to arrive as written — the very text the Kata agent policy pins — writes it escaped.
/// </summary>
public static class KubernetesExpansion
{
    /// <summary>
    /// <paramref name="value"/> with every <c>$</c> doubled, which the kubelet's expansion turns back into
    /// <paramref name="value"/> whatever follows each <c>$</c> (a reference, another <c>$</c>, anything else, the end).
    /// </summary>
    public static string Literal(string value) => value.Replace("$", "$$", StringComparison.Ordinal);
}
