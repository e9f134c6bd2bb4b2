namespace Morphisms.Kms.Functions;

/// <summary>
/// Whether hardware reference values identify one function rather than every guest of one image. With Kata, the SNP
/// launch measurement and the TDX MRTD/RTMRs measure the guest firmware, kernel and initrd that every pod on that
/// runtime class shares, not the container: the function is bound by what the launcher hands the hardware to report —
/// SNP HOST_DATA or TDX MRCONFIGID, the digest of the initdata document that names the function and its image. A
/// registration without it would let any workload launched on that guest image log in as the function and receive its
/// secrets, so one is required unless the registrant says the function is built into the measured image
/// (<c>launch_measurement_binds_workload</c>). TDX always needs RTMR1 and RTMR2 as well: MRTD is only the TD firmware,
/// and a guest kernel or initrd of anyone's choosing could present the (public) initdata document of another function.
/// </summary>
/// <remarks>
/// All zeros does not count: it is what a guest launched without host data or a config ID reports. SGX is not checked
/// here: MRENCLAVE measures the enclave's code and its manifest, and a signer identity (MRSIGNER, ISVPRODID, minimum
/// ISVSVN) is a deliberate choice to trust whatever that signer builds under that product. The simulated TEE's
/// measurement covers the function's own bundle and launch configuration.
/// </remarks>
internal static class WorkloadBinding
{
    /// <summary>The opt-in's field name, inside <c>snp</c> or <c>tdx</c>.</summary>
    public const string OptIn = "launch_measurement_binds_workload";

    private const string SharedImage = "any workload launched on the same guest image could log in as this function and receive its secrets and certificates";

    /// <summary>Why <paramref name="r"/> binds no workload, as a 400 naming the field; null when it binds one.</summary>
    public static MissingBinding? Check(SnpReference r) =>
        r.LaunchMeasurementBindsWorkload || IsSet(r.HostData) ? null : new MissingBinding(
            "snp.host_data",
            r.HostData is null ? "missing" : "all zeros (what a guest launched without host data reports)",
            "the SNP launch measurement covers the guest firmware, kernel and initrd, not the function: with Kata every pod on that guest image "
            + "shows it. HOST_DATA binds the function (with Kata: SHA-256 of the initdata document, which `morph export knative` prints); without it "
            + $"{SharedImage}. Set snp.{OptIn} to true instead only if the function is built into the measured image");

    /// <summary>As <see cref="Check(SnpReference)"/> for TDX: RTMR1 and RTMR2 always, MRCONFIGID unless the launch measurement binds the workload.</summary>
    public static MissingBinding? Check(TdxReference r)
    {
        const string firmwareOnly = "MRTD measures only the TD firmware (TDVF), so any TD booted with that firmware shows it whatever it runs";
        if (!IsSet(r.Rtmr1))
        {
            return new MissingBinding("tdx.rtmr1", Absent(r.Rtmr1),
                $"{firmwareOnly}; RTMR1 measures the guest kernel, and is required with or without tdx.{OptIn}");
        }

        if (!IsSet(r.Rtmr2))
        {
            return new MissingBinding("tdx.rtmr2", Absent(r.Rtmr2),
                $"{firmwareOnly}; RTMR2 measures the kernel command line and initrd, and is required with or without tdx.{OptIn}");
        }

        return r.LaunchMeasurementBindsWorkload || IsSet(r.MrConfigId) ? null : new MissingBinding("tdx.mrconfigid", Absent(r.MrConfigId),
            "MRTD and the RTMRs cover the guest firmware, kernel and initrd, not the function: with Kata every pod on that guest image shows them. "
            + $"MRCONFIGID binds the function (with Kata: SHA-384 of the initdata document, which `morph export knative` prints); without it {SharedImage}. "
            + $"Set tdx.{OptIn} to true instead only if the function is built into the measured image");
    }

    /// <summary>
    /// The TEEs whose reference in <paramref name="values"/> relies on the opt-in: it is set and the field that would
    /// bind the workload is not. An opt-in beside a HOST_DATA or MRCONFIGID binds nothing the field does not already
    /// bind, so it is left out: the audit marks only logins that rest on the registrant's word.
    /// </summary>
    public static List<string> ReliedOn(ReferenceValues? values)
    {
        var tees = new List<string>();
        if (values?.Snp is { LaunchMeasurementBindsWorkload: true } snp && !IsSet(snp.HostData))
        {
            tees.Add("snp");
        }

        if (values?.Tdx is { LaunchMeasurementBindsWorkload: true } tdx && !IsSet(tdx.MrConfigId))
        {
            tees.Add("tdx");
        }

        return tees;
    }

    private static string Absent(string? hex) => hex is null ? "missing" : "all zeros (what a TD reports when nothing was set or measured there)";

    private static bool IsSet(string? hex) => hex is not null && hex.Any(c => c != '0');
}

/// <summary>A reference value that must bind the workload and does not.</summary>
/// <param name="Field">The parameter, e.g. <c>snp.host_data</c>.</param>
/// <param name="State">"missing" or why the given value does not count.</param>
/// <param name="Why">What the field binds and what its absence would let in.</param>
internal sealed record MissingBinding(string Field, string State, string Why)
{
    /// <summary>The 400 a registration gets.</summary>
    public Http.KmsException ToBadRequest() => Http.KmsException.BadRequest($"parameter '{Field}' is {State}: {Why}");

    /// <summary>The reason a login against a revision stored before this rule is refused.</summary>
    public string ToLoginRefusal(string function, int revision) =>
        $"revision {revision} of function {function} does not bind the workload ({Field} is {State}): {Why}; register it again with {Field}";
}
