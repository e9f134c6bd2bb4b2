namespace Morphisms.Cli;

/// <summary>Process exit codes shared by every <c>morph</c> command (DESIGN.md §4).</summary>
public static class ExitCodes
{
    /// <summary>Success: for verification, the evidence is authentic and passes the policy.</summary>
    public const int Ok = 0;

    /// <summary>The evidence (or request) was rejected.</summary>
    public const int Rejected = 1;

    /// <summary>Usage error or unreadable input.</summary>
    public const int UsageOrInput = 2;
}
