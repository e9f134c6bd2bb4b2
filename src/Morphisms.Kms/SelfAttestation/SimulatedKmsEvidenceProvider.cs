using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Kms.SelfAttestation;

/// <summary>The KMS's evidence on a machine without TEE hardware: SNP-format reports from the installation's simulated TEE.</summary>
internal sealed class SimulatedKmsEvidenceProvider(SimulatedTeeAuthority tee, byte[] measurement) : IKmsEvidenceProvider
{
    /// <inheritdoc />
    public Task<KmsEvidence> GetEvidenceAsync(byte[] reportData, CancellationToken cancellationToken)
    {
        var report = tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = reportData, Measurement = measurement });
        return Task.FromResult(new KmsEvidence(TeeType.Snp, report, tee.Vcek.RawData, Simulated: true));
    }
}
