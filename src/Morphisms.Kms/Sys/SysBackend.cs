using Morphisms.Kms.Attest;
using Morphisms.Kms.Audit;
using Morphisms.Kms.Http;
using Morphisms.Kms.Metrics;
using Morphisms.Kms.Policies;
using Morphisms.Kms.Seal;
using Morphisms.Kms.SelfAttestation;
using Morphisms.Kms.Snapshots;

namespace Morphisms.Kms.Sys;

/// <summary>The <c>sys/</c> mount: its routes come from each feature's own route group.</summary>
internal sealed class SysBackend : ILogicalBackend
{
    public SysBackend(KmsCore core, KmsMetrics metrics, KmsIdentity identity, ChallengeStore challenges)
    {
        SealRoutes.Register(Routes, core);
        RekeyRoutes.Register(Routes, core);
        SnapshotRoutes.Register(Routes, core);
        PolicyRoutes.Register(Routes);
        MountRoutes.Register(Routes);
        CapabilityRoutes.Register(Routes);
        AuditRoutes.Register(Routes);
        MetricsRoutes.Register(Routes, core, metrics, challenges);
        SelfAttestationRoutes.Register(Routes, identity);
    }

    /// <inheritdoc />
    public string Type => "system";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();
}
