namespace Morphisms.Agent.Evidence;

/// <summary>Shared checks on what a device handed back.</summary>
internal static class ReportDataCheck
{
    /// <summary>Rejects anything but 64 bytes: every TEE's REPORT_DATA field is exactly that long.</summary>
    public static void RequireLength(ReadOnlyMemory<byte> reportData)
    {
        if (reportData.Length != 64)
        {
            throw new ArgumentException($"report data must be 64 bytes, got {reportData.Length}", nameof(reportData));
        }
    }

    /// <summary>
    /// The evidence must carry the requested report data: a mismatch means another process raced us on a shared
    /// device interface, and the KMS would refuse the login anyway, with a less helpful reason.
    /// </summary>
    public static void RequireMatch(ReadOnlySpan<byte> actual, ReadOnlyMemory<byte> expected, string source)
    {
        if (!actual.SequenceEqual(expected.Span))
        {
            throw new EvidenceException($"{source}: the evidence carries different report data than was requested (a concurrent request on the device?)");
        }
    }
}
