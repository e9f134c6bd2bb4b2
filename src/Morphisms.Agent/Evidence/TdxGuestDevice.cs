using System.Runtime.InteropServices;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// The TD's own report (TDREPORT_STRUCT), which the TDX module makes inside the guest (TDCALL TDG.MR.REPORT). Unlike a
/// quote, no part of it passes through the host, so the launch fields read from it are the ones the TD was created with.
/// </summary>
public interface ITdReportSource
{
    /// <summary>Where the report comes from, for logs and errors (e.g. <c>/dev/tdx_guest</c>).</summary>
    string Name { get; }

    /// <summary>True when the interface exists in this guest.</summary>
    bool IsPresent { get; }

    /// <summary>Gets the 1024-byte TDREPORT whose REPORTDATA is <paramref name="reportData"/> (64 bytes).</summary>
    /// <exception cref="EvidenceException">The interface refused or is not a TDX guest's.</exception>
    byte[] GetReport(ReadOnlySpan<byte> reportData);
}

/// <summary>
/// <c>/dev/tdx_guest</c>'s <c>TDX_CMD_GET_REPORT0</c> ioctl (Linux ≥ 6.2). UNTESTED ON HARDWARE: the struct and ioctl
/// number are unit-tested against the uapi, and the ioctl path is exercised only against devices that are not TDX
/// guests (where it fails cleanly). The older out-of-tree <c>/dev/tdx-guest</c> has another ABI and is not used.
/// </summary>
public sealed class TdxGuestDevice(string device) : ITdReportSource
{
    /// <summary>The device node the kernel's tdx-guest driver makes.</summary>
    public const string DefaultPath = "/dev/tdx_guest";

    /// <inheritdoc />
    public string Name => device;

    /// <inheritdoc />
    public bool IsPresent => File.Exists(device);

    /// <inheritdoc />
    public unsafe byte[] GetReport(ReadOnlySpan<byte> reportData)
    {
        using (var handle = GuestDevice.Open(device, "tdx-guest"))
        {
            var request = TdxGuestAbi.Request(reportData);
            if (GuestDevice.Ioctl((int)handle.DangerousGetHandle(), TdxGuestAbi.GetReport0, &request) != 0)
            {
                throw new EvidenceException($"{device}: TDX_CMD_GET_REPORT0 failed: errno {Marshal.GetLastPInvokeError()}");
            }

            return TdxGuestAbi.Report(ref request);
        }
    }
}

/// <summary>
/// Reads the TD's MRCONFIGID from the guest's side only: the kernel's measurement file (Linux ≥ 6.16,
/// <c>/sys/class/misc/tdx_guest/measurements/mrconfigid</c>, the 48 raw bytes of the TDREPORT the driver took at boot)
/// when it exists, else a fresh TDREPORT from <see cref="ITdReportSource"/>. Never from a configfs-tsm quote: on TDX
/// the kernel hands the TDREPORT to the host's quoting service (GetQuote) and returns whatever comes back unverified,
/// so a hostile host could answer with a quote carrying its own MRCONFIGID, and with it its own KMS CA pin.
/// </summary>
public sealed class TdxMrConfigIdReader(string measurementFile, ITdReportSource report)
{
    /// <summary>Where Linux ≥ 6.16 exposes MRCONFIGID (<c>Documentation/ABI/testing/sysfs-devices-virtual-misc-tdx_guest</c>).</summary>
    public const string DefaultMeasurementFile = "/sys/class/misc/tdx_guest/measurements/mrconfigid";

    /// <summary>The value and where it was read.</summary>
    /// <exception cref="EvidenceException">Neither interface exists, or the one that does gave no well-formed MRCONFIGID.</exception>
    public (byte[] Value, string Source) Read()
    {
        if (File.Exists(measurementFile))
        {
            // A binary attribute of exactly 48 bytes; any other size is an ABI this code does not know, never a prefix to take.
            byte[] value;
            try
            {
                value = File.ReadAllBytes(measurementFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new EvidenceException($"TDX: cannot read {measurementFile}: {e.Message}", e);
            }

            return value.Length == TdxGuestAbi.MrConfigIdLength
                ? (value, $"TD report ({measurementFile})")
                : throw new EvidenceException($"TDX: {measurementFile} holds {value.Length} bytes, expected the {TdxGuestAbi.MrConfigIdLength} of MRCONFIGID");
        }

        if (report.IsPresent)
        {
            // MRCONFIGID is fixed at TD creation, so any report data will do; a random one, checked to come back, tells a
            // report the module just made for this request from a buffer left as it was.
            var reportData = System.Security.Cryptography.RandomNumberGenerator.GetBytes(TdxGuestAbi.ReportDataLength);
            return (TdxGuestAbi.MrConfigId(report.GetReport(reportData), reportData, report.Name), $"TD report ({report.Name})");
        }

        throw new EvidenceException(
            $"TDX: neither {measurementFile} nor {report.Name} exists, so MRCONFIGID cannot be read from the TD's own report; "
            + "the configfs-tsm quote is not used for it, since the host's quoting service produces the quote and could rewrite MRCONFIGID "
            + "(and with it the KMS CA pin). Give the agent the tdx_guest device (Linux >= 6.2) or its sysfs measurements (Linux >= 6.16)");
    }
}
