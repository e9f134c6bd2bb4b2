namespace Morphisms.Client.Trust;

/// <summary>
/// What a client pinned after verifying a KMS's attestation: the KMS root CA (which every function
/// certificate must chain to), the KMS's TLS key, and what the evidence showed.
/// </summary>
public sealed record KmsTrustRecord
{
    /// <summary>The KMS base URL the record is for.</summary>
    public required string KmsUrl { get; init; }

    /// <summary>The KMS root CA certificate, PEM.</summary>
    public required string RootCaPem { get; init; }

    /// <summary>Lowercase hex SHA-256 of the root CA certificate DER (the pin the agent uses too).</summary>
    public required string RootCaSha256 { get; init; }

    /// <summary>Lowercase hex SHA-256 of the KMS TLS certificate's SubjectPublicKeyInfo, bound into the evidence.</summary>
    public required string TlsSpkiSha256 { get; init; }

    /// <summary>The KMS's TEE type.</summary>
    public required string Tee { get; init; }

    /// <summary>
    /// What the KMS attested, in the typed form of <see cref="KmsMeasurementPin"/> (<c>snp:…</c>, <c>sgx:…</c>,
    /// <c>tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3</c>); a record from before that form holds bare hex of the SNP MEASUREMENT,
    /// SGX MRENCLAVE or TDX MRTD.
    /// </summary>
    public required string Measurement { get; init; }

    /// <summary>
    /// The measurements the KMS had to show to be pinned, in the typed form of <see cref="KmsMeasurementPin"/> (empty
    /// with <see cref="AnyMeasurement"/>), so a re-trust or a KMS upgrade is checked against an explicit, recorded
    /// choice. A record from before that form holds bare hex, read as <see cref="KmsMeasurementPin.Parse"/> reads it.
    /// </summary>
    public IReadOnlyList<string> ExpectedMeasurements { get; init; } = [];

    /// <summary>
    /// True when the KMS was pinned without a measurement check (<c>--any-measurement</c>). A record written before
    /// the policy was recorded has neither this nor <see cref="ExpectedMeasurements"/>: whether its measurement was
    /// checked is unknown, and trusting the KMS again records it.
    /// </summary>
    public bool AnyMeasurement { get; init; }

    /// <summary>True when the KMS attested with the simulated TEE: the pin then proves nothing about hardware.</summary>
    public required bool Simulated { get; init; }

    /// <summary>When the evidence was verified.</summary>
    public required DateTimeOffset VerifiedAt { get; init; }
}
