using Morphisms.Attestation;
using Morphisms.Attestation.Identity;
using Morphisms.Client.Trust;
using static Morphisms.Client.Trust.MeasurementText;

namespace Morphisms.Client.Functions;

/// <summary>
/// A function measurement to require of the instance a client connects to, tied to the TEE that measures it, written
/// <c>snp:MEASUREMENT</c> (96 hex digits), <c>sgx:MRENCLAVE</c> (64) or <c>tdx:MRTD</c> (96). It is checked against the
/// instance's certificate, whose attested-identity extension carries the TEE and the one launch measurement the KMS
/// read from the evidence it verified at attest-login; an instance matches only when both are equal, so a value meant
/// for one TEE is never satisfied by another TEE's measurement of the same bytes.
/// <para>
/// TDX: the certificate carries MRTD and nothing else, and MRTD measures only the TD firmware (TDVF). So
/// <c>tdx:MRTD</c> pins the firmware the function's TD booted, not what runs in it: the kernel, command line and
/// initrd (RTMR1, RTMR2) and the initdata naming the function (MRCONFIGID) are not in the certificate. The KMS compared
/// them with the revision's registered reference values before it issued the certificate (a TDX registration without
/// RTMR1 and RTMR2 is refused), so a certificate naming this function and revision stands for them — but the client
/// checks them only through that, never by value. The five-register form a TDX KMS is pinned with
/// (<see cref="KmsMeasurementPin"/>) is refused here rather than checked on MRTD alone, which would claim a check of
/// values the client never sees.
/// </para>
/// <para>
/// An untyped hex value (what <c>morph invoke --expect-measurement</c> took before it was typed) is read as for a KMS:
/// 64 digits as <c>sgx:</c>, 96 as <c>snp:</c>, never as TDX.
/// </para>
/// </summary>
public sealed class FunctionMeasurementPin : IEquatable<FunctionMeasurementPin>
{
    /// <summary>The typed forms, for help and error messages.</summary>
    public const string Syntax = "snp:MEASUREMENT (96 hex digits), sgx:MRENCLAVE (64) or tdx:MRTD (96)";

    private const string Kind = "a function measurement";

    private readonly byte[] _value;

    private FunctionMeasurementPin(TeeType tee, byte[] value)
    {
        Tee = tee;
        _value = value;
    }

    /// <summary>The TEE whose attestation this measurement is for.</summary>
    public TeeType Tee { get; }

    /// <summary>The value: SNP MEASUREMENT (48 bytes), SGX MRENCLAVE (32) or TDX MRTD (48).</summary>
    public ReadOnlyMemory<byte> Value => _value;

    /// <summary>An SNP launch MEASUREMENT (48 bytes).</summary>
    public static FunctionMeasurementPin Snp(ReadOnlySpan<byte> measurement) => new(TeeType.Snp, Exactly(measurement, Sha384Length, "an SNP MEASUREMENT"));

    /// <summary>An SGX MRENCLAVE (32 bytes).</summary>
    public static FunctionMeasurementPin Sgx(ReadOnlySpan<byte> mrEnclave) => new(TeeType.Sgx, Exactly(mrEnclave, MrEnclaveLength, "an SGX MRENCLAVE"));

    /// <summary>A TDX MRTD (48 bytes): the TD firmware only, as the type describes.</summary>
    public static FunctionMeasurementPin Tdx(ReadOnlySpan<byte> mrTd) => new(TeeType.Tdx, Exactly(mrTd, Sha384Length, "a TDX MRTD"));

    /// <summary>
    /// Parses the typed form, or an untyped hex value as described on the type (64 digits: SGX; 96: SNP, never TDX).
    /// </summary>
    /// <exception cref="FormatException">Naming what is wrong, and the typed form.</exception>
    public static FunctionMeasurementPin Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!TrySplitTyped(text.Trim(), Kind, Syntax, out var tee, out var body))
        {
            var (untypedTee, value) = Untyped(body, Kind, Syntax);
            return new FunctionMeasurementPin(untypedTee, value);
        }

        return tee switch
        {
            TeeType.Snp => Snp(Component(body, Sha384Length, "snp: MEASUREMENT")),
            TeeType.Sgx => Sgx(Component(body, MrEnclaveLength, "sgx: MRENCLAVE")),
            _ => Tdx(ParseMrTd(body)),
        };
    }

    /// <summary>True when <paramref name="text"/> names its TEE (has a <c>tee:</c> prefix).</summary>
    public static bool IsTyped(string text) => text?.Contains(':', StringComparison.Ordinal) == true;

    /// <summary>True when <paramref name="identity"/> names this pin's TEE and carries its value.</summary>
    public bool Matches(AttestedIdentityExtension identity) => Mismatch(identity) is null;

    /// <summary>Why <paramref name="identity"/> does not match (another TEE, or another value), or null when it does.</summary>
    public string? Mismatch(AttestedIdentityExtension identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        var attested = $"{identity.Tee}:{Hex.Of(identity.Measurement)}";
        if (!TeeTypes.TryParse(identity.Tee, out var tee) || tee != Tee)
        {
            return $"the instance was attested by {identity.Tee} (measurement {attested}), and the expected {this} is a "
                + $"{Tee.ToWireName()} measurement: one TEE's measurement never stands for another's";
        }

        return identity.Measurement.AsSpan().SequenceEqual(_value) ? null : $"measurement {attested} is not the expected {this}";
    }

    /// <summary>The typed form, lowercase hex: <c>snp:…</c>, <c>sgx:…</c>, <c>tdx:…</c>.</summary>
    public override string ToString() => $"{Tee.ToWireName()}:{Convert.ToHexStringLower(_value)}";

    /// <inheritdoc />
    public bool Equals(FunctionMeasurementPin? other) => other is not null && Tee == other.Tee && _value.AsSpan().SequenceEqual(other._value);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as FunctionMeasurementPin);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToString());

    private static byte[] ParseMrTd(string body)
    {
        if (body.Contains('/', StringComparison.Ordinal))
        {
            throw new FormatException(
                "tdx: a function is pinned by MRTD alone (tdx:MRTD, 96 hex digits): its certificate carries no other TDX "
                + "register, so RTMR values given here could not be checked. The kernel, command line and function in the TD "
                + "are what the KMS checked against the revision's reference values before it issued the certificate");
        }

        return Component(body, Sha384Length, "tdx: MRTD");
    }
}
