namespace Morphisms.Attestation;

/// <summary>
/// Thrown when evidence or collateral bytes do not have the expected structure. The message names
/// the field (and offset where it helps) so a user can see what is wrong with their input.
/// </summary>
public sealed class EvidenceFormatException : FormatException
{
    /// <summary>Creates the exception for <paramref name="field"/>.</summary>
    public EvidenceFormatException(string field, string message)
        : base($"{field}: {message}")
    {
        Field = field;
    }

    /// <summary>The name of the field or structure that is malformed.</summary>
    public string Field { get; }
}
