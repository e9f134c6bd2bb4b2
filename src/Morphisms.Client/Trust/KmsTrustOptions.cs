using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Client.Trust;

/// <summary>
/// How a client decides whether to trust a KMS. Which measurements to accept must be said: with neither
/// <see cref="ExpectedMeasurements"/> (or <see cref="ExpectedMeasurement"/>) nor <see cref="AnyMeasurement"/>,
/// <see cref="KmsAttestationClient.VerifyAsync"/> refuses before contacting the KMS. Genuine evidence alone proves
/// only that some TEE holds the KMS's keys, and anyone can rent a TEE to run a look-alike KMS in.
/// </summary>
public sealed record KmsTrustOptions
{
    /// <summary>Roots to verify the KMS's evidence with; add a simulated root only for a dev installation.</summary>
    public TrustAnchors Anchors { get; init; } = TrustAnchors.Vendor;

    /// <summary>
    /// The KMS measurements to accept (SNP MEASUREMENT or TDX MRTD, 48 bytes; SGX MRENCLAVE, 32 bytes): the KMS must
    /// attest one of them. Several are for an upgrade, while old and new KMS builds both run.
    /// </summary>
    public IReadOnlyList<byte[]> ExpectedMeasurements { get; init; } = [];

    /// <summary>One measurement to accept, added to <see cref="ExpectedMeasurements"/> (kept for callers from before sets).</summary>
    public byte[]? ExpectedMeasurement { get; init; }

    /// <summary>
    /// Accept a KMS whatever its measurement. INSECURE: the evidence then proves only that some genuine TEE (or the
    /// trusted simulated one) holds the TLS key and root CA, not that it runs the Morphisms KMS. Cannot be combined
    /// with expected measurements.
    /// </summary>
    public bool AnyMeasurement { get; init; }

    /// <summary>Collateral for an SGX/TDX KMS (an SNP KMS sends its VCEK).</summary>
    public ICollateralSource? Collateral { get; init; }

    /// <summary>The clock for certificate and collateral validity.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>How long to wait for the KMS.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Every measurement to accept: <see cref="ExpectedMeasurements"/> and <see cref="ExpectedMeasurement"/>.</summary>
    public IReadOnlyList<byte[]> AcceptedMeasurements =>
        ExpectedMeasurement is { } one ? [.. ExpectedMeasurements, one] : ExpectedMeasurements;

    /// <summary>
    /// Why the measurement policy cannot be used (none given, both a set and <see cref="AnyMeasurement"/>, or a value
    /// no TEE measures), or null when it can. <see cref="KmsAttestationClient.VerifyAsync"/> refuses on it.
    /// </summary>
    public string? MeasurementPolicyProblem()
    {
        var accepted = AcceptedMeasurements;
        if (AnyMeasurement)
        {
            return accepted.Count > 0 ? "expected measurements and AnyMeasurement contradict each other: give one or the other" : null;
        }

        if (accepted.Count == 0)
        {
            return "no expected KMS measurement: evidence without one proves only that some TEE holds the KMS's keys, not that it runs the KMS";
        }

        foreach (var measurement in accepted)
        {
            if (measurement is not { Length: 32 or 48 })
            {
                return $"an expected measurement of {measurement?.Length ?? 0} bytes: a KMS measurement is 48 bytes (SNP MEASUREMENT, TDX MRTD) or 32 (SGX MRENCLAVE)";
            }
        }

        return null;
    }
}
