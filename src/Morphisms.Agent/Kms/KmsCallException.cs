namespace Morphisms.Agent.Kms;

/// <summary>The KMS answered with an error status; <see cref="Exception.Message"/> carries its <c>errors</c> (no secrets).</summary>
public sealed class KmsCallException(int status, string path, string errors) : Exception($"KMS {path}: {status}: {errors}")
{
    /// <summary>The HTTP status.</summary>
    public int Status { get; } = status;

    /// <summary>The KMS's error text.</summary>
    public string Errors { get; } = errors;

    /// <summary>Worth retrying: the KMS is sealed, overloaded or failing.</summary>
    public bool Transient => Status is 429 or >= 500;
}
