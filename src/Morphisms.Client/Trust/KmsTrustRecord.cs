using Morphisms.Attestation;

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

    /// <summary>
    /// Lowercase hex SHA-256 of the root CA certificate DER: the anchor of function certificates. Not the agent's KMS
    /// TLS pin, which is the CA that issued the KMS's TLS certificate (this root also signs <c>pki/</c> role leaves).
    /// </summary>
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
    /// checked is unknown, so <see cref="UsabilityProblem"/> refuses it until the KMS is trusted again.
    /// </summary>
    public bool AnyMeasurement { get; init; }

    /// <summary>True when the KMS attested with the simulated TEE: the pin then proves nothing about hardware.</summary>
    public required bool Simulated { get; init; }

    /// <summary>
    /// True when the KMS proved it holds the root CA's private key (<see cref="Attestation.Binding.KmsRootCaProof"/>),
    /// as every KMS <see cref="KmsAttestationClient"/> trusts now must. A record written before that proof existed has
    /// false: its root was only bound, and the root certificate is public. With a measurement pin the measured KMS code
    /// vouches for the root (a genuine KMS presents only its own), so such a record stays usable; with
    /// <see cref="AnyMeasurement"/> nothing does, and <see cref="UsabilityProblem"/> refuses it.
    /// </summary>
    public bool RootCaKeyProven { get; init; }

    /// <summary>When the evidence was verified.</summary>
    public required DateTimeOffset VerifiedAt { get; init; }

    /// <summary>
    /// Why this record must not be used to trust the KMS, or null when it may: it names no measurement policy (written
    /// before measurements were required, so whether one was checked is unknown), or none of its expected measurements
    /// is a complete one for the KMS's TEE (a TDX KMS pinned by MRTD alone, which any TD with that firmware shows), or it
    /// accepted any measurement before the KMS had to prove it holds the root CA's key (<see cref="RootCaKeyProven"/>).
    /// The message says how to trust the KMS again.
    /// </summary>
    public string? UsabilityProblem()
    {
        var retrust = $"trust it again: morph kms trust {KmsUrl} " + (TeeTypes.TryParse(Tee, out var tee)
            ? $"--expect-measurement {KmsMeasurementPin.SyntaxFor(tee)}"
            : "--expect-measurement TEE:HEX")
            + (Simulated ? ", or --dev for this installation's dev KMS" : ", the measurement published with the KMS image");
        if (AnyMeasurement)
        {
            if (ExpectedMeasurements.Count > 0)
            {
                return $"the trust record for {KmsUrl} both expects measurements and accepts any: {retrust}";
            }

            // Such a record may be an impostor's: any attested server could bind the real KMS's public root certificate
            // beside its own TLS key, and no measured code vouched for the root instead.
            return RootCaKeyProven ? null
                : $"the trust record for {KmsUrl} accepted any KMS measurement before a KMS had to prove it holds its root CA's key: "
                    + $"the root certificate is public, so the server pinned may not hold it; {retrust} (or with --any-measurement again, "
                    + "which now requires the proof)";
        }

        if (ExpectedMeasurements.Count == 0)
        {
            return $"the trust record for {KmsUrl} was written before KMS measurements were required: whether the KMS's measurement "
                + $"was checked is unknown, so it is not used; {retrust}";
        }

        var pins = new List<KmsMeasurementPin>();
        foreach (var expected in ExpectedMeasurements)
        {
            try
            {
                pins.Add(KmsMeasurementPin.Parse(expected ?? string.Empty));
            }
            catch (FormatException e)
            {
                return $"the trust record for {KmsUrl} holds an expected measurement that is not one ({e.Message}); {retrust}";
            }
        }

        if (!TeeTypes.TryParse(Tee, out _))
        {
            return $"the trust record for {KmsUrl} names no known TEE ('{Tee}'); {retrust}";
        }

        if (!pins.Any(p => p.Tee == tee))
        {
            return tee == TeeType.Tdx
                ? $"the trust record for {KmsUrl} pinned a TDX KMS by MRTD alone, which measures only the TD firmware: any TD booted "
                    + $"with that firmware shows it whatever it runs, so it is not used; {retrust}"
                : $"the trust record for {KmsUrl} expects no {Tee} measurement, but the KMS attested with {Tee}; {retrust}";
        }

        return null;
    }
}
