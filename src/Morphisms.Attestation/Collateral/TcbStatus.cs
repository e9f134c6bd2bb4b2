namespace Morphisms.Attestation.Collateral;

/// <summary>
/// The TCB status names Intel uses in TCB info and enclave identity levels, plus the two TD-relaunch
/// statuses Intel's quote verification library derives for TDX 1.5 quotes. Policies compare against these.
/// </summary>
public static class TcbStatus
{
    /// <summary>The TCB is fully patched.</summary>
    public const string UpToDate = "UpToDate";

    /// <summary>Patched, but the enclave/TD software must apply mitigations (for example against INTEL-SA-00615).</summary>
    public const string SWHardeningNeeded = "SWHardeningNeeded";

    /// <summary>Patched, but the platform configuration (BIOS settings such as hyper-threading) needs changes.</summary>
    public const string ConfigurationNeeded = "ConfigurationNeeded";

    /// <summary>Both a configuration change and software hardening are needed.</summary>
    public const string ConfigurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded";

    /// <summary>A newer TCB (microcode, firmware, QE or TDX module) exists that fixes known advisories.</summary>
    public const string OutOfDate = "OutOfDate";

    /// <summary>Out of date and the configuration needs changes.</summary>
    public const string OutOfDateConfigurationNeeded = "OutOfDateConfigurationNeeded";

    /// <summary>The TCB is revoked: evidence from it must be refused.</summary>
    public const string Revoked = "Revoked";

    /// <summary>TDX: the platform was updated since the TD launched; relaunching the TD brings it up to date.</summary>
    public const string TDRelaunchAdvised = "TDRelaunchAdvised";

    /// <summary>TDX: relaunch advised, and the configuration also needs changes.</summary>
    public const string TDRelaunchAdvisedConfigurationNeeded = "TDRelaunchAdvisedConfigurationNeeded";

    /// <summary>Statuses a platform TCB level in TCB info may carry.</summary>
    public static IReadOnlySet<string> PlatformLevelStatuses { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded,
        OutOfDate, OutOfDateConfigurationNeeded, Revoked,
    };

    /// <summary>Statuses a TDX module identity level or a QE identity level may carry.</summary>
    public static IReadOnlySet<string> IdentityLevelStatuses { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        UpToDate, OutOfDate, Revoked,
    };
}
