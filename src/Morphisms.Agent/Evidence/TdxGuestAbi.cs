using System.Runtime.InteropServices;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// The struct and ioctl number of Linux's <c>include/uapi/linux/tdx-guest.h</c>, and the TDREPORT_STRUCT layout of
/// Intel's TDX module ABI (the kernel's <c>drivers/virt/coco/tdx-guest</c> reads the same offsets). Kept apart from the
/// device code so the marshalling and the parsing are unit-tested on machines without TDX.
/// </summary>
internal static class TdxGuestAbi
{
    /// <summary><c>TDX_REPORTDATA_LEN</c>.</summary>
    public const int ReportDataLength = 64;

    /// <summary><c>TDX_REPORT_LEN</c>: the size of TDREPORT_STRUCT.</summary>
    public const int ReportLength = 1024;

    /// <summary>Size of <c>struct tdx_report_req</c>: <c>reportdata[64]</c>, then <c>tdreport[1024]</c>.</summary>
    public const int RequestSize = ReportDataLength + ReportLength;

    /// <summary><c>TDX_CMD_GET_REPORT0</c> = <c>_IOWR('T', 1, struct tdx_report_req)</c>.</summary>
    public static readonly ulong GetReport0 = SevGuestAbi.Iowr('T', 1, RequestSize);

    /// <summary>REPORTTYPE.TYPE of a TD report (0x00 would be SGX); the first byte of REPORTMACSTRUCT.</summary>
    public const byte ReportTypeTdx = 0x81;

    /// <summary>REPORTMACSTRUCT.REPORTDATA: type header 4, reserved 12, CPUSVN 16, two SHA-384 hashes, then the 64 bytes.</summary>
    public const int ReportDataOffset = 128;

    /// <summary>TDINFO_STRUCT: after REPORTMACSTRUCT (256), TEE_TCB_INFO (239) and 17 reserved bytes.</summary>
    public const int TdInfoOffset = 512;

    /// <summary>MRCONFIGID: TDINFO's ATTRIBUTES (8), XFAM (8) and MRTD (48) come first.</summary>
    public const int MrConfigIdOffset = TdInfoOffset + 8 + 8 + 48;

    /// <summary>The length of MRCONFIGID.</summary>
    public const int MrConfigIdLength = 48;

    /// <summary><c>struct tdx_report_req</c>.</summary>
    [StructLayout(LayoutKind.Sequential, Size = RequestSize)]
    public unsafe struct ReportRequest
    {
        /// <summary>The 64 bytes that become REPORTMACSTRUCT.REPORTDATA.</summary>
        public fixed byte ReportData[ReportDataLength];

        /// <summary>The TDREPORT the kernel copies back from TDG.MR.REPORT.</summary>
        public fixed byte TdReport[ReportLength];
    }

    /// <summary>A request carrying <paramref name="reportData"/> (64 bytes) and an all-zero report buffer.</summary>
    public static unsafe ReportRequest Request(ReadOnlySpan<byte> reportData)
    {
        if (reportData.Length != ReportDataLength)
        {
            throw new ArgumentException($"report data is {ReportDataLength} bytes, not {reportData.Length}", nameof(reportData));
        }

        var request = default(ReportRequest);
        reportData.CopyTo(new Span<byte>(request.ReportData, ReportDataLength));
        return request;
    }

    /// <summary>The report buffer of a request the kernel answered.</summary>
    public static unsafe byte[] Report(ref ReportRequest request)
    {
        fixed (byte* report = request.TdReport)
        {
            return new ReadOnlySpan<byte>(report, ReportLength).ToArray();
        }
    }

    /// <summary>
    /// MRCONFIGID of a TDREPORT, after checking that the buffer is a TD report answering <paramref name="reportData"/>:
    /// an unfilled buffer (all zeros) or someone else's report would otherwise read as a launch field.
    /// The MAC is not checked (only the CPU can check it, for the quoting enclave): the report came straight from the TDX
    /// module through the guest's own kernel, which the host cannot reach into.
    /// </summary>
    /// <exception cref="EvidenceException">The buffer is not such a report.</exception>
    public static byte[] MrConfigId(ReadOnlySpan<byte> tdReport, ReadOnlySpan<byte> reportData, string source)
    {
        if (tdReport.Length != ReportLength)
        {
            throw new EvidenceException($"{source}: a TDREPORT is {ReportLength} bytes, got {tdReport.Length}");
        }

        if (tdReport[0] != ReportTypeTdx)
        {
            throw new EvidenceException($"{source}: not a TD report (REPORTTYPE.TYPE 0x{tdReport[0]:x2}, expected 0x{ReportTypeTdx:x2})");
        }

        if (!tdReport.Slice(ReportDataOffset, ReportDataLength).SequenceEqual(reportData))
        {
            throw new EvidenceException($"{source}: the TDREPORT's REPORTDATA is not the one requested");
        }

        return tdReport.Slice(MrConfigIdOffset, MrConfigIdLength).ToArray();
    }
}
