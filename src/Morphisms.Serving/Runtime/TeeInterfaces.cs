using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Where the host's TEE guest interfaces are. An instance of a function with a real TEE sees its own TEE's
/// interfaces inside the sandbox, at the standard paths (the defaults here, which is where morph-init and Gramine look);
/// these are only the host side, so tests can stand in temporary files for devices.
/// </summary>
public sealed record TeeInterfaces
{
    /// <summary>The SEV-SNP guest device (<c>tee: snp</c>; morph-init's ioctl path when configfs-tsm is absent).</summary>
    public string SevGuest { get; init; } = "/dev/sev-guest";

    /// <summary>The TDX guest device (<c>tee: tdx</c>).</summary>
    public string TdxGuest { get; init; } = "/dev/tdx_guest";

    /// <summary>
    /// The kernel's TDX MRCONFIGID measurement (<c>tee: tdx</c>, Linux 6.16 and later), which morph-init reads its KMS pin
    /// from before the TDX guest device. The sandbox's read-only <c>/sys</c> shows it already; it is looked for here only
    /// to tell whether an instance can read its pin at all.
    /// </summary>
    public string TdxMrConfigId { get; init; } = "/sys/class/misc/tdx_guest/measurements/mrconfigid";

    /// <summary>The configfs-tsm report directory (<c>tee: snp</c> and <c>tdx</c>); shown writable, since a report is a directory made in it.</summary>
    public string ConfigFsTsmReport { get; init; } = "/sys/kernel/config/tsm/report";

    /// <summary>The SGX enclave device gramine-sgx builds the enclave with (<c>tee: sgx</c>).</summary>
    public string SgxEnclave { get; init; } = "/dev/sgx_enclave";

    /// <summary>The SGX provisioning device (<c>tee: sgx</c>; Gramine's container recipes pass it with the enclave device).</summary>
    public string SgxProvision { get; init; } = "/dev/sgx_provision";

    /// <summary>
    /// The directory of the AESM service's socket (<c>aesm.socket</c>), through which Gramine gets quotes (<c>tee: sgx</c>).
    /// Shown whole, read-only, as Kubernetes deployments mount it: a socket bound alone would go stale when aesmd restarts.
    /// </summary>
    public string AesmDirectory { get; init; } = "/var/run/aesmd";
}

/// <summary>How a host interface is shown inside the sandbox.</summary>
public enum SandboxMountKind
{
    /// <summary>A device node (<c>--dev-bind</c>): usable, as <c>--dev</c>'s fresh <c>/dev</c> is not.</summary>
    Device,

    /// <summary>Read-write (<c>--bind</c>).</summary>
    ReadWrite,

    /// <summary>Read-only (<c>--ro-bind</c>); a Unix socket in it can still be connected to.</summary>
    ReadOnly,
}

/// <summary>A host path shown inside the sandbox at <paramref name="Target"/>.</summary>
/// <param name="Kind">How it is mounted.</param>
/// <param name="Source">The host path.</param>
/// <param name="Target">Where the sandbox shows it.</param>
public sealed record SandboxMount(SandboxMountKind Kind, string Source, string Target);

/// <summary>The TEE interfaces an instance gets: those of its own TEE that exist on the host, and what is missing.</summary>
/// <param name="Mounts">What to show in the sandbox.</param>
/// <param name="Missing">Why its instances cannot obtain evidence on this host, or null when they can.</param>
internal sealed record TeeSandboxPlan(IReadOnlyList<SandboxMount> Mounts, string? Missing)
{
    private static readonly TeeInterfaces Standard = new();

    /// <summary>
    /// The plan for a function of <paramref name="tee"/>: exactly that TEE's interfaces, those present at
    /// <paramref name="host"/>'s paths; <c>sim</c> and <c>none</c> get nothing.
    /// </summary>
    public static TeeSandboxPlan For(FunctionTee tee, TeeInterfaces host)
    {
        var tsm = new SandboxMount(SandboxMountKind.ReadWrite, host.ConfigFsTsmReport, Standard.ConfigFsTsmReport);
        switch (tee)
        {
            case FunctionTee.Snp:
                {
                    var sevGuest = new SandboxMount(SandboxMountKind.Device, host.SevGuest, Standard.SevGuest);
                    var mounts = Present(sevGuest, tsm);

                    // morph-init takes configfs-tsm when it is there and the ioctl device otherwise: either will do.
                    return new(mounts, mounts.Count > 0 ? null : $"neither {host.SevGuest} nor {host.ConfigFsTsmReport} exists");
                }

            case FunctionTee.Tdx:
                {
                    var device = new SandboxMount(SandboxMountKind.Device, host.TdxGuest, Standard.TdxGuest);
                    var mounts = Present(device, tsm);

                    // morph-init reads TDX quotes through configfs-tsm only, and its KMS pin (MRCONFIGID) from the TD's
                    // own report: the kernel's measurement file, else the device's TDREPORT, never the host-made quote.
                    // The older /dev/tdx-guest offers neither, so it is not shown.
                    string? missing = !mounts.Contains(tsm) ? $"{host.ConfigFsTsmReport} does not exist (morph-init reads TDX quotes through configfs-tsm)"
                        : !mounts.Contains(device) && !File.Exists(host.TdxMrConfigId) ? $"neither {host.TdxGuest} nor {host.TdxMrConfigId} exists (morph-init reads its KMS pin, MRCONFIGID, from the TD's own report)"
                        : null;
                    return new(mounts, missing);
                }

            case FunctionTee.Sgx:
                {
                    var enclave = new SandboxMount(SandboxMountKind.Device, host.SgxEnclave, Standard.SgxEnclave);
                    var aesm = new SandboxMount(SandboxMountKind.ReadOnly, host.AesmDirectory, Standard.AesmDirectory);
                    var mounts = Present(enclave, new SandboxMount(SandboxMountKind.Device, host.SgxProvision, Standard.SgxProvision), aesm);
                    string[] absent = [.. new[] { enclave, aesm }.Where(m => !mounts.Contains(m)).Select(m => m.Source)];
                    return new(mounts, absent.Length == 0 ? null : $"{string.Join(" and ", absent)} {(absent.Length == 1 ? "does" : "do")} not exist (gramine-sgx needs the enclave device and aesmd for quotes)");
                }

            default:
                return new([], null);
        }
    }

    private static List<SandboxMount> Present(params SandboxMount[] candidates) =>
        [.. candidates.Where(m => File.Exists(m.Source) || Directory.Exists(m.Source))];
}
