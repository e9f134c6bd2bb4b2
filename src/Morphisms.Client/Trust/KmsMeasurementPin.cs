using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;
using static Morphisms.Client.Trust.MeasurementText;

namespace Morphisms.Client.Trust;

/// <summary>
/// A KMS measurement to require, tied to the TEE that measures it, written <c>snp:MEASUREMENT</c> (96 hex digits),
/// <c>sgx:MRENCLAVE</c> (64) or <c>tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3</c> (96 each). A KMS matches only when it attests
/// with that TEE and every component is equal.
/// <para>
/// TDX needs all five registers: MRTD measures only the TD firmware (TDVF), while the kernel, its command line and the
/// initrd — the KMS itself — are measured into RTMR0–3, so any TD booted with the same firmware shows the same MRTD
/// whatever it runs. SNP's MEASUREMENT and SGX's MRENCLAVE already cover the whole launch image.
/// </para>
/// <para>
/// An untyped hex value (what <c>--expect-measurement</c> took before it was typed) is read as the only TEE measurement
/// of that size that is a complete pin: 64 digits as <c>sgx:</c>, 96 as <c>snp:</c>. It never means TDX, so a script or
/// record that pinned a TDX KMS by MRTD alone is refused instead of keeping a pin any TD with that firmware passes.
/// </para>
/// </summary>
public sealed class KmsMeasurementPin : IEquatable<KmsMeasurementPin>
{
    /// <summary>The typed forms, for help and error messages.</summary>
    public const string Syntax = "snp:MEASUREMENT (96 hex digits), sgx:MRENCLAVE (64) or tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3 (96 each)";

    private const string Kind = "a KMS measurement";
    private static readonly string[] TdxNames = ["MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3"];

    private readonly byte[][] _components;

    private KmsMeasurementPin(TeeType tee, byte[][] components)
    {
        Tee = tee;
        _components = components;
    }

    /// <summary>The TEE whose evidence this measurement is for.</summary>
    public TeeType Tee { get; }

    /// <summary>The values, in order: SNP MEASUREMENT; SGX MRENCLAVE; TDX MRTD, RTMR0, RTMR1, RTMR2, RTMR3.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Components => [.. _components.Select(c => new ReadOnlyMemory<byte>(c))];

    /// <summary>An SNP launch MEASUREMENT (48 bytes).</summary>
    public static KmsMeasurementPin Snp(ReadOnlySpan<byte> measurement) =>
        new(TeeType.Snp, [Exactly(measurement, Sha384Length, "an SNP MEASUREMENT")]);

    /// <summary>An SGX MRENCLAVE (32 bytes).</summary>
    public static KmsMeasurementPin Sgx(ReadOnlySpan<byte> mrEnclave) =>
        new(TeeType.Sgx, [Exactly(mrEnclave, MrEnclaveLength, "an SGX MRENCLAVE")]);

    /// <summary>A TDX trust domain: MRTD and RTMR0–3 (48 bytes each), all required.</summary>
    public static KmsMeasurementPin Tdx(ReadOnlySpan<byte> mrTd, ReadOnlySpan<byte> rtmr0, ReadOnlySpan<byte> rtmr1, ReadOnlySpan<byte> rtmr2, ReadOnlySpan<byte> rtmr3) =>
        new(TeeType.Tdx,
        [
            Exactly(mrTd, Sha384Length, "a TDX MRTD"), Exactly(rtmr0, Sha384Length, "a TDX RTMR0"), Exactly(rtmr1, Sha384Length, "a TDX RTMR1"),
            Exactly(rtmr2, Sha384Length, "a TDX RTMR2"), Exactly(rtmr3, Sha384Length, "a TDX RTMR3"),
        ]);

    /// <summary>What <paramref name="claims"/> attest, in the typed form: the pin such a KMS matches.</summary>
    public static KmsMeasurementPin Of(EvidenceClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        return claims switch
        {
            TdxClaims tdx => Tdx(tdx.MrTd.Span, tdx.Rtmr0.Span, tdx.Rtmr1.Span, tdx.Rtmr2.Span, tdx.Rtmr3.Span),
            SgxClaims sgx => Sgx(sgx.Measurement.Span),
            SnpClaims snp => Snp(snp.Measurement.Span),
            _ => throw new ArgumentException($"no KMS measurement form for {claims.Tee.ToWireName()} claims", nameof(claims)),
        };
    }

    /// <summary>
    /// Parses the typed form, or an untyped hex value as described on the type (64 digits: SGX; 96: SNP, never TDX).
    /// </summary>
    /// <exception cref="FormatException">Naming what is wrong or missing, and the typed form.</exception>
    public static KmsMeasurementPin Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!TrySplitTyped(text.Trim(), Kind, Syntax, out var tee, out var body))
        {
            var (untypedTee, value) = Untyped(body, Kind, Syntax);
            return untypedTee == TeeType.Sgx ? Sgx(value) : Snp(value);
        }

        return tee switch
        {
            TeeType.Snp => Snp(Component(body, Sha384Length, "snp: MEASUREMENT")),
            TeeType.Sgx => Sgx(Component(body, MrEnclaveLength, "sgx: MRENCLAVE")),
            _ => ParseTdx(body),
        };
    }

    /// <summary>True when <paramref name="text"/> names its TEE (has a <c>tee:</c> prefix).</summary>
    public static bool IsTyped(string text) => text?.Contains(':', StringComparison.Ordinal) == true;

    /// <summary>The typed form for one TEE, for messages that tell the user what to give.</summary>
    public static string SyntaxFor(TeeType tee) => tee switch
    {
        TeeType.Snp => "snp:MEASUREMENT (96 hex digits)",
        TeeType.Sgx => "sgx:MRENCLAVE (64 hex digits)",
        _ => "tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3 (96 hex digits each)",
    };

    /// <summary>True when <paramref name="claims"/> come from this pin's TEE and show every one of its values.</summary>
    public bool Matches(EvidenceClaims claims) => Mismatch(claims) is null;

    /// <summary>Why <paramref name="claims"/> do not match (the TEE, or the components that differ), or null when they do.</summary>
    public string? Mismatch(EvidenceClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        if (claims.Tee != Tee)
        {
            return $"{Tee.ToWireName()}, not {claims.Tee.ToWireName()}";
        }

        var attested = Of(claims)._components;
        var differing = Enumerable.Range(0, _components.Length).Where(i => !attested[i].AsSpan().SequenceEqual(_components[i])).ToList();
        if (differing.Count == 0)
        {
            return null;
        }

        return Tee == TeeType.Tdx ? string.Join(", ", differing.Select(i => TdxNames[i])) + " differ" : "differs";
    }

    /// <summary>The typed form, lowercase hex: <c>snp:…</c>, <c>sgx:…</c>, <c>tdx:…/…/…/…/…</c>.</summary>
    public override string ToString() => $"{Tee.ToWireName()}:{string.Join('/', _components.Select(Convert.ToHexStringLower))}";

    /// <inheritdoc />
    public bool Equals(KmsMeasurementPin? other) => other is not null && string.Equals(ToString(), other.ToString(), StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as KmsMeasurementPin);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToString());

    private static KmsMeasurementPin ParseTdx(string body)
    {
        var parts = body.Split('/');
        if (parts.Length == 1)
        {
            throw new FormatException(
                "tdx: MRTD alone is not a KMS measurement: it measures only the TD firmware (TDVF), and any TD booted with that "
                + "firmware shows it whatever it runs; the KMS's kernel, command line and initrd are in RTMR0-3. Missing: RTMR0, "
                + "RTMR1, RTMR2, RTMR3. Give tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3 (96 hex digits each), as published with the KMS image");
        }

        if (parts.Length < TdxNames.Length)
        {
            throw new FormatException(
                $"tdx: missing {string.Join(", ", TdxNames[parts.Length..])}: a TDX KMS measurement is MRTD/RTMR0/RTMR1/RTMR2/RTMR3 "
                + "(96 hex digits each), since the KMS's kernel, command line and initrd are measured into the RTMRs");
        }

        if (parts.Length > TdxNames.Length)
        {
            throw new FormatException($"tdx: {parts.Length} values; a TDX KMS measurement is exactly MRTD/RTMR0/RTMR1/RTMR2/RTMR3");
        }

        var values = parts.Select((p, i) => Component(p, Sha384Length, $"tdx: {TdxNames[i]}")).ToArray();
        return Tdx(values[0], values[1], values[2], values[3], values[4]);
    }
}
