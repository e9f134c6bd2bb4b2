namespace Morphisms.Kms;

/// <summary>What dev mode hands to the embedded tooling (<c>morph up</c>): the unseal key and root token.</summary>
/// <param name="UnsealKey">The single unseal key, base64.</param>
/// <param name="RootToken">The root token.</param>
/// <param name="KeyFile">Where both are stored in plain text, or null when only in memory.</param>
public sealed record KmsDevCredentials(string UnsealKey, string RootToken, string? KeyFile)
{
    /// <summary>Keeps the secrets out of logs and debugger displays.</summary>
    public override string ToString() => $"KmsDevCredentials {{ KeyFile = {KeyFile} }}";
}
