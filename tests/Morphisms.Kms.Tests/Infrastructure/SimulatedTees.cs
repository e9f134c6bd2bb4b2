using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Kms.Tests;

/// <summary>
/// Simulated TEEs shared by the tests (creating one generates two RSA-3072 keys, so each is made once per run):
/// <see cref="Trusted"/> is the one the test KMSs trust; <see cref="Untrusted"/> is another installation's.
/// </summary>
public static class SimulatedTees
{
    /// <summary>The clock every test KMS starts at; the simulated certificates are valid from a day before it.</summary>
    public static readonly DateTimeOffset Epoch = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    private static readonly Lazy<SimulatedTeeAuthority> TrustedTee = new(() => SimulatedTeeAuthority.Create(new FakeTimeProvider(Epoch)));
    private static readonly Lazy<SimulatedTeeAuthority> UntrustedTee = new(() => SimulatedTeeAuthority.Create(new FakeTimeProvider(Epoch)));

    /// <summary>The simulated TEE the test KMSs trust.</summary>
    public static SimulatedTeeAuthority Trusted => TrustedTee.Value;

    /// <summary>A simulated TEE no test KMS trusts.</summary>
    public static SimulatedTeeAuthority Untrusted => UntrustedTee.Value;

    /// <summary>The KMS's own simulated measurement in tests (fixed, so nothing is hashed).</summary>
    public static byte[] KmsMeasurement { get; } = Enumerable.Repeat((byte)0x4B, 48).ToArray();

    /// <summary>Options that trust <see cref="Trusted"/>, as <c>morph kms server --dev</c> does.</summary>
    public static KmsServerOptions TrustingSimulated(KmsServerOptions options) => options with
    {
        Attestation = options.Attestation with { SimulatedTee = Trusted, TrustSimulatedTee = true, SimulatedMeasurement = KmsMeasurement },
    };
}
