namespace Morphisms.Kms.Audit;

/// <summary>The outcome of <see cref="AuditLogVerifier.Verify(string, byte[], string)"/>.</summary>
/// <param name="Valid">True when no problem was found.</param>
/// <param name="Entries">How many well-formed entries were read.</param>
/// <param name="LastSequence">The last entry's sequence number (0 for an empty log).</param>
/// <param name="LastHash">The last entry's chain hash: record it elsewhere to detect a truncated tail later.</param>
/// <param name="MacsChecked">Whether the chain MACs were checked (a chain key was given).</param>
/// <param name="Problems">One message per problem, naming the line number.</param>
/// <param name="FirstSequence">
/// The first entry's sequence number: 1, or later for a file that begins with the KMS's notice of a truncation (a
/// rotated log's new file); 0 for an empty log.
/// </param>
public sealed record AuditVerification(bool Valid, long Entries, long LastSequence, string LastHash, bool MacsChecked, IReadOnlyList<string> Problems, long FirstSequence = 1);
