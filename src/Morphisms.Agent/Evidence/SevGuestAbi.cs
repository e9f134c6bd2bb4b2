using System.Runtime.InteropServices;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// Struct layouts and ioctl numbers of Linux's <c>include/uapi/linux/sev-guest.h</c>. Kept apart from the device
/// code so the marshalling is unit-tested on machines without SEV-SNP.
/// </summary>
internal static class SevGuestAbi
{
    /// <summary>Size of <c>struct snp_guest_request_ioctl</c>.</summary>
    public const int GuestRequestSize = 32;

    /// <summary><c>_IOWR('S', 0x0, struct snp_guest_request_ioctl)</c>.</summary>
    public static readonly ulong SnpGetReport = Iowr('S', 0x0, GuestRequestSize);

    /// <summary><c>_IOWR('S', 0x2, struct snp_guest_request_ioctl)</c>.</summary>
    public static readonly ulong SnpGetExtReport = Iowr('S', 0x2, GuestRequestSize);

    /// <summary>The message version the kernel expects (<c>msg_version</c>).</summary>
    public const byte MessageVersion = 1;

    /// <summary>Size of <c>struct snp_report_resp</c>'s data.</summary>
    public const int ResponseSize = 4000;

    /// <summary>Offset of the report inside the response (<c>MSG_REPORT_RSP</c>: status, size, 24 reserved bytes).</summary>
    public const int ReportOffsetInResponse = 0x20;

    /// <summary>The VMM error meaning "certificate buffer too small; <c>certs_len</c> now holds the size needed".</summary>
    public const uint VmmErrorInvalidLength = 1;

    /// <summary>Linux's <c>_IOC(_IOC_READ|_IOC_WRITE, type, nr, size)</c>.</summary>
    public static ulong Iowr(char type, uint nr, uint size) => (3UL << 30) | ((ulong)size << 16) | ((ulong)type << 8) | nr;

    /// <summary><c>struct snp_guest_request_ioctl</c>.</summary>
    [StructLayout(LayoutKind.Explicit, Size = GuestRequestSize)]
    public struct GuestRequest
    {
        /// <summary>Message version (1).</summary>
        [FieldOffset(0)] public byte MsgVersion;

        /// <summary>Address of the request struct.</summary>
        [FieldOffset(8)] public ulong ReqData;

        /// <summary>Address of the response struct.</summary>
        [FieldOffset(16)] public ulong RespData;

        /// <summary>Firmware error (low half of exitinfo2).</summary>
        [FieldOffset(24)] public uint FwError;

        /// <summary>VMM error (high half of exitinfo2).</summary>
        [FieldOffset(28)] public uint VmmError;
    }

    /// <summary><c>struct snp_report_req</c>: user data (64), VMPL, 28 reserved bytes.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 96)]
    public unsafe struct ReportRequest
    {
        /// <summary>The 64 bytes that become REPORT_DATA.</summary>
        public fixed byte UserData[64];

        /// <summary>The VMPL to report at.</summary>
        public uint Vmpl;

        /// <summary>Reserved, zero.</summary>
        public fixed byte Reserved[28];
    }

    /// <summary><c>struct snp_ext_report_req</c>: the report request, then the certificate buffer address and length.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 112)]
    public struct ExtReportRequest
    {
        /// <summary>The plain report request.</summary>
        [FieldOffset(0)] public ReportRequest Data;

        /// <summary>Address of a page-aligned buffer for the certificate table.</summary>
        [FieldOffset(96)] public ulong CertsAddress;

        /// <summary>The buffer's length (a multiple of 4096); the kernel writes the size needed back here.</summary>
        [FieldOffset(104)] public uint CertsLength;
    }

    /// <summary>Copies user data into a request.</summary>
    public static unsafe ReportRequest Request(ReadOnlySpan<byte> userData, uint vmpl)
    {
        var request = new ReportRequest { Vmpl = vmpl };
        userData.CopyTo(new Span<byte>(request.UserData, 64));
        return request;
    }

    /// <summary>Extracts the report from a response (status must be 0; the size field bounds the copy).</summary>
    public static byte[] ReportFromResponse(ReadOnlySpan<byte> response)
    {
        var status = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(response);
        var size = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(response[4..]);
        if (status != 0)
        {
            throw new EvidenceException($"sev-guest: the firmware refused the report request (status 0x{status:x})");
        }

        if (size == 0 || size > response.Length - ReportOffsetInResponse)
        {
            throw new EvidenceException($"sev-guest: implausible report size {size}");
        }

        return response.Slice(ReportOffsetInResponse, (int)size).ToArray();
    }
}
