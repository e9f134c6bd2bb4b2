using Morphisms.Attestation.Simulated;

namespace Morphisms.Attestation.Tests.Simulated;

/// <summary>One simulated TEE shared by the tests of a class: RSA key generation is the slow part.</summary>
public sealed class SimulatedFixture : IDisposable
{
    public SimulatedTeeAuthority Authority { get; } = SimulatedTeeAuthority.Create(TimeProvider.System);

    public void Dispose() => Authority.Dispose();
}
