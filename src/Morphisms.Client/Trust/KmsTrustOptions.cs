using Morphisms.Attestation;
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
    /// The KMS measurements to accept, each tied to its TEE (<see cref="KmsMeasurementPin"/>: SNP MEASUREMENT, SGX
    /// MRENCLAVE, or TDX MRTD with RTMR0–3, and for a KMS in a Kata VM its HOST_DATA / MRCONFIGID): the KMS must attest
    /// one of them. Several are for an upgrade, while old and new KMS builds both run.
    /// </summary>
    public IReadOnlyList<KmsMeasurementPin> ExpectedMeasurements { get; init; } = [];

    /// <summary>One measurement to accept, added to <see cref="ExpectedMeasurements"/> (kept for callers from before sets).</summary>
    public KmsMeasurementPin? ExpectedMeasurement { get; init; }

    /// <summary>
    /// Accept a KMS whatever its measurement. INSECURE: the evidence then proves only that some genuine TEE (or the
    /// trusted simulated one) holds the TLS key and root CA, not that it runs the Morphisms KMS. Cannot be combined
    /// with expected measurements.
    /// </summary>
    public bool AnyMeasurement { get; init; }

    /// <summary>
    /// The SHA-256 of the KMS root CA certificate (DER) that the KMS's operator publishes, as hex (either case, colons
    /// between bytes allowed, as <c>openssl x509 -fingerprint -sha256</c> prints it). When set, the KMS is pinned only
    /// if the root CA its evidence binds has this hash. When null the pin is trust on first use of whoever answers: a
    /// measurement names the code, not who runs it, so anyone on the network path can start the published KMS image
    /// in a TEE of their own and answer with a root CA of their own, which the measurement check passes.
    /// </summary>
    public string? ExpectedRootCaSha256 { get; init; }

    /// <summary>
    /// SNP: the least privileged VMPL the KMS's report may come from. 0 by default: under a paravisor or SVSM a less
    /// privileged VMPL can get reports carrying the VMPL 0 image's MEASUREMENT beside REPORT_DATA of its own choosing.
    /// Raise it only for a KMS that really runs above VMPL 0; 3 accepts any VMPL.
    /// </summary>
    public uint MaximumSnpVmpl { get; init; }

    /// <summary>Collateral for an SGX/TDX KMS (an SNP KMS sends its VCEK).</summary>
    public ICollateralSource? Collateral { get; init; }

    /// <summary>The clock for certificate and collateral validity.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>How long to wait for the KMS.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Every measurement to accept: <see cref="ExpectedMeasurements"/> and <see cref="ExpectedMeasurement"/>.</summary>
    public IReadOnlyList<KmsMeasurementPin> AcceptedMeasurements =>
        ExpectedMeasurement is { } one ? [.. ExpectedMeasurements, one] : ExpectedMeasurements;

    /// <summary>
    /// Why the measurement policy cannot be used (none given, or both a set and <see cref="AnyMeasurement"/>), or null
    /// when it can. <see cref="KmsAttestationClient.VerifyAsync"/> refuses on it. Each <see cref="KmsMeasurementPin"/>
    /// is complete by construction (a TDX one cannot be built from MRTD alone).
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

        return accepted.Any(m => m is null) ? "an expected measurement is null" : null;
    }

    /// <summary>
    /// Reads a root CA fingerprint as <see cref="ExpectedRootCaSha256"/> takes it: 32 bytes of hex, either case,
    /// colons allowed (<c>AB:CD:…</c>); returns the 64 lowercase digits <see cref="KmsTrustRecord.RootCaSha256"/> holds.
    /// </summary>
    /// <exception cref="FormatException">Not hex, or not 32 bytes; the message says what is expected.</exception>
    public static string ParseRootCaSha256(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        if (!Hex.TryParse(trimmed.Replace(":", string.Empty, StringComparison.Ordinal), out var bytes) || bytes.Length != 32)
        {
            throw new FormatException($"'{trimmed}' is not a SHA-256 fingerprint: give the 64 hex digits of the SHA-256 of the KMS root CA certificate (DER), colons between bytes allowed");
        }

        return Convert.ToHexStringLower(bytes);
    }

    /// <summary>
    /// Why a KMS attesting <paramref name="claims"/> does not show an accepted measurement, or null when it does (or
    /// when <see cref="AnyMeasurement"/> is set). The KMS's TEE must be the pin's and every component equal.
    /// </summary>
    public string? MeasurementFailure(EvidenceClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        var expected = AcceptedMeasurements;
        if (AnyMeasurement || expected.Any(m => m.Matches(claims)))
        {
            return null;
        }

        var attested = KmsMeasurementPin.Of(claims);
        var tee = claims.Tee.ToWireName();
        var ofThisTee = expected.Where(m => m.Tee == claims.Tee).ToList();
        if (ofThisTee.Count == 0)
        {
            // Said plainly: an untyped 96-digit value is an SNP MEASUREMENT, so a TDX KMS pinned by its MRTD ends here.
            return $"the KMS attests with {tee} ({attested}), but no expected measurement is for {tee}: "
                + $"expected {string.Join(", ", expected)}. A {tee} KMS is pinned with {KmsMeasurementPin.SyntaxFor(claims.Tee)}";
        }

        return $"the KMS attests {attested}, which is not "
            + (ofThisTee.Count == 1
                ? $"the expected {ofThisTee[0]} ({ofThisTee[0].Mismatch(claims)})"
                : $"one of the expected {string.Join(", ", ofThisTee.Select(m => $"{m} ({m.Mismatch(claims)})"))}");
    }

    /// <summary>
    /// What the user must be told when the pin that accepted a KMS attesting <paramref name="claims"/> binds only its
    /// launch image, or null. That is when the KMS's report carries a non-zero SNP HOST_DATA or TDX MRCONFIGID — the
    /// digest of a Kata pod's initdata, which is what makes the pod the KMS — and no accepted pin it matches requires it.
    /// Under Kata the launch values measure the guest image every pod of the runtime class boots, so such a pin is passed
    /// by any of those pods, a fake KMS binding its own TLS key included. The KMS is not refused: pins and records from
    /// before the field existed keep working. The message names the pin that binds the workload, to use instead.
    /// </summary>
    public string? WorkloadWarning(EvidenceClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        // --any-measurement has its own, louder warning; SGX has no such field (MRENCLAVE covers the enclave).
        if (AnyMeasurement || KmsMeasurementPin.WorkloadFieldOf(claims.Tee) is not { } field)
        {
            return null;
        }

        var attested = KmsMeasurementPin.Of(claims);
        var matching = AcceptedMeasurements.Where(m => m.Matches(claims)).ToList();
        if (attested.Workload is not { } workload || matching.Count == 0 || matching.Any(m => m.BindsWorkload))
        {
            return null;
        }

        var image = claims.Tee == TeeType.Tdx
            ? "TDX MRTD and RTMR0-3 measure the TD's firmware, kernel, command line and initrd"
            : "SNP MEASUREMENT measures the VM's launch image";
        return $"the pin {string.Join(" / ", matching)} accepted this KMS without its {field.Field}, so it does NOT bind the KMS "
            + $"workload, only the guest image: {image}, and in a Kata confidential VM that is the guest image every pod of the "
            + "runtime class boots, whatever container it runs. Any pod started from that image, a fake KMS whose report binds "
            + $"its own TLS key included, passes this pin. This KMS's {field.Field} is {Convert.ToHexStringLower(workload.Span)} "
            + "(the digest of its initdata, which pins its image and command): check it against the one `morph export kms` "
            + $"printed for your KMS, and pin {attested} instead";
    }
}
