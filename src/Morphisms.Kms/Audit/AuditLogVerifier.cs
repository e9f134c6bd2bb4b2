using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Morphisms.Kms.Audit;

/// <summary>
/// Checks an audit log file. Without a key it checks the SHA-256 chain and sequence numbers, which detects an
/// edited, inserted, reordered or removed entry unless the whole tail after it was recomputed. With the chain key
/// (held by the KMS under its barrier; <c>sys/audit-verify</c> runs this inside the KMS) it also checks each MAC,
/// which nobody without the key can recompute. Truncating the tail is only visible against a previously recorded
/// <see cref="AuditVerification.LastHash"/>, passed back as the expected last hash, or (inside the running KMS) against
/// the last entry the KMS itself wrote. A file may begin mid-chain only with the notice the KMS writes when it finds its
/// log truncated under it (logrotate's <c>copytruncate</c>); that notice names the previous entry's hash and MAC, so the
/// file verifies from there on (with the key, the notice's MAC too), and <see cref="AuditVerification.FirstSequence"/>
/// says where it starts. Entries before it are in the rotated copy; a file cut anywhere else reports the cut.
/// </summary>
public static class AuditLogVerifier
{
    /// <summary>Verifies the log at <paramref name="path"/>.</summary>
    /// <param name="path">The audit log file.</param>
    /// <param name="chainKey">The chain key (<see cref="AuditKeys.ChainKey"/>), or null to check hashes only.</param>
    /// <param name="expectedLastHash">A hash recorded earlier that must still be in the log, or null.</param>
    public static AuditVerification Verify(string path, byte[]? chainKey = null, string? expectedLastHash = null) =>
        Verify(path, chainKey, expectedLastHash, writtenHead: null);

    /// <summary>
    /// Verifies the log at <paramref name="path"/> and, with <paramref name="writtenHead"/> (the last entry the running
    /// KMS wrote, <see cref="AuditLog.Head"/>), that the file still holds that entry: a cut tail or a file replaced by
    /// another chain (even one that chains and has valid MACs, such as a shorter copy of the log) lacks it.
    /// </summary>
    internal static AuditVerification Verify(string path, byte[]? chainKey, string? expectedLastHash, (long Sequence, string Hash)? writtenHead)
    {
        var problems = new List<string>();
        var previousHash = AuditChain.Genesis;
        var previousMac = "";
        long entries = 0;
        long lastSeq = 0;
        var sawExpected = expectedLastHash is null;
        var sawHead = writtenHead is not { Sequence: > 0 };
        var lineNumber = 0;
        long firstSeq = 1;
        foreach (var line in File.ReadLines(path, Encoding.UTF8))
        {
            lineNumber++;
            if (!AuditChain.TrySplit(line, out var body, out var hash, out var mac))
            {
                problems.Add(Line(lineNumber, "is not a chained audit entry (malformed or truncated)"));
                continue;
            }

            long seq;
            string? prev;
            (long Seq, string Hash, string Mac)? continues = null;
            try
            {
                using var doc = JsonDocument.Parse(body + "}");
                seq = doc.RootElement.GetProperty("seq").GetInt64();
                prev = doc.RootElement.GetProperty("prev").GetString();
                if (doc.RootElement.TryGetProperty(AuditChain.ContinuesField, out var c) && c.ValueKind == JsonValueKind.Object
                    && doc.RootElement.TryGetProperty("type", out var type) && type.ValueEquals("notice"))
                {
                    continues = (c.GetProperty("seq").GetInt64(), c.GetProperty("hash").GetString() ?? "", c.GetProperty("mac").GetString() ?? "");
                }
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                problems.Add(Line(lineNumber, "has a body that is not valid JSON with seq and prev"));
                continue;
            }

            if (continues is { } from)
            {
                if (lineNumber == 1)
                {
                    // A file that begins where the KMS continued after a truncation (a log rotated with copytruncate):
                    // checked from there on, the notice's own MAC against the previous MAC it names.
                    lastSeq = from.Seq;
                    previousHash = from.Hash;
                    previousMac = from.Mac;
                    firstSeq = from.Seq + 1;
                }
                else
                {
                    problems.Add(Line(lineNumber, $"is where the KMS found the log truncated or replaced under it and continued after entry {from.Seq}"));
                }
            }

            if (seq != lastSeq + 1)
            {
                problems.Add(Line(lineNumber, $"has sequence {seq}, expected {lastSeq + 1} (an entry was removed, inserted or reordered)"));
            }

            if (prev != previousHash)
            {
                problems.Add(Line(lineNumber, "does not chain to the previous entry (prev differs from the previous hash)"));
            }

            if (!FixedEquals(AuditChain.HashBody(body), hash))
            {
                problems.Add(Line(lineNumber, "was modified (its hash does not match its content)"));
            }

            if (chainKey is not null && !FixedEquals(AuditChain.Mac(chainKey, previousMac, hash), mac))
            {
                problems.Add(Line(lineNumber, "has an invalid MAC (forged or re-chained without the key)"));
            }

            if (writtenHead is { } head && seq == head.Sequence)
            {
                sawHead = true;
                if (!FixedEquals(hash, head.Hash))
                {
                    problems.Add(Line(lineNumber, $"is not the entry {seq} the KMS wrote (its hash differs): the log was replaced"));
                }
            }

            sawExpected |= hash == expectedLastHash;
            previousHash = hash;
            previousMac = mac;
            lastSeq = seq;
            entries++;
        }

        if (!sawHead)
        {
            problems.Add(string.Create(
                CultureInfo.InvariantCulture,
                $"the log has no entry {writtenHead!.Value.Sequence}, the last the KMS wrote (its last is {lastSeq}): the log was truncated or replaced"));
        }

        if (!sawExpected)
        {
            problems.Add("the expected last hash was not found: the log was truncated or replaced");
        }

        return new AuditVerification(problems.Count == 0, entries, lastSeq, previousHash, chainKey is not null, problems, entries == 0 ? 0 : firstSeq);
    }

    private static string Line(int n, string what) => string.Create(CultureInfo.InvariantCulture, $"line {n} {what}");

    private static bool FixedEquals(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));
}
