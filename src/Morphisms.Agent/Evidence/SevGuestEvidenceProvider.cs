using System.Runtime.InteropServices;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Agent.Evidence;

/// <summary>
/// SEV-SNP through <c>/dev/sev-guest</c> (SNP_GET_EXT_REPORT, falling back to SNP_GET_REPORT), for kernels without
/// configfs-tsm. UNTESTED ON HARDWARE: the struct marshalling is unit-tested, and the ioctl path is exercised only
/// against devices that are not SNP guests (where it fails cleanly). The measured KMS CA pin is HOST_DATA of a plain
/// report.
/// </summary>
public sealed class SevGuestEvidenceProvider(string device, uint vmpl = 0) : IEvidenceProvider, IMeasuredPinSource
{
    private const int PageSize = 4096;

    // A VCEK, ASK and ARK take a few KiB; a host asking for more than this is not asking for certificates.
    private const uint MaxCertsLength = 64 * PageSize;

    /// <inheritdoc />
    public string Name => "sev-guest";

    /// <summary>True when the device node exists.</summary>
    public static bool IsPresent(string device) => File.Exists(device);

    /// <inheritdoc />
    public Task<TeeEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken ct)
    {
        ReportDataCheck.RequireLength(reportData);
        using (var handle = Open())
        {
            var fd = (int)handle.DangerousGetHandle();
            var (report, certificates) = ExtendedReport(fd, reportData.Span);
            SnpReport parsed;
            try
            {
                parsed = SnpReport.Parse(report);
            }
            catch (Exception e) when (e is not EvidenceException)
            {
                throw new EvidenceException($"sev-guest: the SNP report does not parse: {e.Message}", e);
            }

            ReportDataCheck.RequireMatch(parsed.ReportData.Span, reportData, "sev-guest");
            return Task.FromResult(new TeeEvidence("snp", report, SnpCertTable.SigningKeyCertificate(certificates)));
        }
    }

    /// <inheritdoc />
    public Task<MeasuredPin> ReadKmsCaPinAsync(CancellationToken ct)
    {
        // HOST_DATA is the same in every report of this guest, so the report data does not matter, and the plain
        // request suffices: the certificates the extended one adds are not needed to read a field.
        using var handle = Open();
        var report = PlainReport((int)handle.DangerousGetHandle(), new byte[64]);
        return Task.FromResult(MeasuredPin.FromSnpReport(report, "sev-guest"));
    }

    private Microsoft.Win32.SafeHandles.SafeFileHandle Open() => GuestDevice.Open(device, "sev-guest");

    private unsafe (byte[] Report, byte[] Certificates) ExtendedReport(int fd, ReadOnlySpan<byte> userData)
    {
        var certsLength = 4 * PageSize;
        var response = stackalloc byte[SevGuestAbi.ResponseSize];
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var certs = NativeMemory.AlignedAlloc((nuint)certsLength, PageSize);
            try
            {
                new Span<byte>(certs, certsLength).Clear();
                var request = new SevGuestAbi.ExtReportRequest { Data = SevGuestAbi.Request(userData, vmpl), CertsAddress = (ulong)certs, CertsLength = (uint)certsLength };
                var guest = new SevGuestAbi.GuestRequest { MsgVersion = SevGuestAbi.MessageVersion, ReqData = (ulong)&request, RespData = (ulong)response };
                if (GuestDevice.Ioctl(fd, SevGuestAbi.SnpGetExtReport, &guest) == 0)
                {
                    var table = new Span<byte>(certs, (int)Math.Min(request.CertsLength == 0 ? certsLength : request.CertsLength, (uint)certsLength)).ToArray();
                    return (SevGuestAbi.ReportFromResponse(new ReadOnlySpan<byte>(response, SevGuestAbi.ResponseSize)), table);
                }

                // The length asked for comes from the host: a few pages of certificates, never an allocation it picks.
                if (guest.VmmError == SevGuestAbi.VmmErrorInvalidLength && request.CertsLength > certsLength && request.CertsLength <= MaxCertsLength)
                {
                    certsLength = (int)((request.CertsLength + PageSize - 1) / PageSize * PageSize);
                    continue;
                }

                // Hosts that do not serve certificates fail the extended request; the plain report still works.
                return (PlainReport(fd, userData), []);
            }
            finally
            {
                NativeMemory.AlignedFree(certs);
            }
        }

        return (PlainReport(fd, userData), []);
    }

    private unsafe byte[] PlainReport(int fd, ReadOnlySpan<byte> userData)
    {
        var request = SevGuestAbi.Request(userData, vmpl);
        var response = stackalloc byte[SevGuestAbi.ResponseSize];
        var guest = new SevGuestAbi.GuestRequest { MsgVersion = SevGuestAbi.MessageVersion, ReqData = (ulong)&request, RespData = (ulong)response };
        if (GuestDevice.Ioctl(fd, SevGuestAbi.SnpGetReport, &guest) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new EvidenceException($"sev-guest: SNP_GET_REPORT failed: errno {errno}, firmware error 0x{guest.FwError:x}, VMM error 0x{guest.VmmError:x}");
        }

        return SevGuestAbi.ReportFromResponse(new ReadOnlySpan<byte>(response, SevGuestAbi.ResponseSize));
    }
}
