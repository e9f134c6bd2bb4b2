using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Revisions;

/// <summary>An immutable snapshot of a function: what runs, how it is launched, and its measurement.</summary>
/// <param name="Name">Revision name, <c>&lt;function&gt;-&lt;generation, 5 digits&gt;</c>.</param>
/// <param name="Generation">1 for the first revision, then increasing, also across a removal of the function.</param>
/// <param name="Spec">The spec the revision was made from.</param>
/// <param name="LaunchConfig">The canonical launch configuration (see <see cref="Revisions.LaunchConfig"/>).</param>
/// <param name="Measurement">Lowercase hex: the hash of bundle and launch config (48 bytes; 32 for SGX).</param>
/// <param name="CreatedAt">When the revision was created.</param>
public sealed record Revision(string Name, int Generation, FunctionSpec Spec, byte[] LaunchConfig, string Measurement, DateTimeOffset CreatedAt)
{
    /// <summary>The function the revision belongs to.</summary>
    public string Function => Spec.Name;
}
