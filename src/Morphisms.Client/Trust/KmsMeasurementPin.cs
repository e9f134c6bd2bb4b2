using System.Security.Cryptography;
using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Abi.Snp;
using static Morphisms.Client.Trust.MeasurementText;

namespace Morphisms.Client.Trust;

/// <summary>
/// A KMS measurement to require, tied to the TEE that measures it, written <c>snp:MEASUREMENT</c> (96 hex digits),
/// <c>sgx:MRENCLAVE</c> (64) or <c>tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3</c> (96 each), and for a KMS in a Kata confidential
/// VM the value its workload is bound by: <c>snp:MEASUREMENT,host_data=HEX</c> (HOST_DATA, 64 hex digits) or
/// <c>tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3,mrconfigid=HEX</c> (MRCONFIGID, 96). A KMS matches only when it attests with
/// that TEE and every component given is equal.
/// <para>
/// TDX needs all five registers: MRTD measures only the TD firmware (TDVF), while the kernel, its command line and the
/// initrd are measured into RTMR0–3, so any TD booted with the same firmware shows the same MRTD whatever it runs. SNP's
/// MEASUREMENT and SGX's MRENCLAVE cover the whole launch image.
/// </para>
/// <para>
/// Under Kata (<c>morph export kms</c>) that launch image is the shared guest image — firmware, kernel, initrd — the same
/// for every pod of the runtime class: the KMS container is not in SNP's MEASUREMENT nor in TDX's MRTD and RTMRs. What
/// makes the pod the KMS is its initdata (the agent policy pinning the image and argv), whose digest the hypervisor puts
/// into HOST_DATA / MRCONFIGID. So a pin without <c>host_data</c> / <c>mrconfigid</c> is passed by any pod of that
/// guest image, an impostor's whose report binds its own TLS key included; <see cref="Of"/> therefore writes them
/// whenever the KMS attests a non-zero value, and <see cref="KmsTrustOptions.WorkloadWarning"/> says so when a pin
/// without them accepts such a KMS. They stay optional in the text so pins and trust records from before keep meaning
/// what they meant (a KMS whose launch image is its own, or one trusted before they existed).
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
    public const string Syntax = "snp:MEASUREMENT[,host_data=HEX] (96 hex digits; HOST_DATA 64), sgx:MRENCLAVE (64) or "
        + "tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3[,mrconfigid=HEX] (96 each; MRCONFIGID 96); a KMS in a Kata VM needs host_data / mrconfigid";

    /// <summary>The key after <c>snp:MEASUREMENT,</c> for SNP HOST_DATA, as the KMS's function registrations name it.</summary>
    public const string HostDataKey = "host_data";

    /// <summary>The key after <c>tdx:MRTD/…/RTMR3,</c> for TDX MRCONFIGID, as the KMS's function registrations name it.</summary>
    public const string MrConfigIdKey = "mrconfigid";

    /// <summary>SNP HOST_DATA: 32 bytes (a SHA-256 initdata digest under Kata).</summary>
    private const int HostDataLength = 32;

    private const string Kind = "a KMS measurement";
    private static readonly string[] SnpNames = ["MEASUREMENT"];
    private static readonly string[] SgxNames = ["MRENCLAVE"];
    private static readonly string[] TdxNames = ["MRTD", "RTMR0", "RTMR1", "RTMR2", "RTMR3"];

    private readonly byte[][] _components;
    private readonly byte[]? _workload;

    private KmsMeasurementPin(TeeType tee, byte[][] components, byte[]? workload = null)
    {
        Tee = tee;
        _components = components;
        _workload = workload;
    }

    /// <summary>The TEE whose evidence this measurement is for.</summary>
    public TeeType Tee { get; }

    /// <summary>The values, in order: SNP MEASUREMENT; SGX MRENCLAVE; TDX MRTD, RTMR0, RTMR1, RTMR2, RTMR3.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Components => [.. _components.Select(c => new ReadOnlyMemory<byte>(c))];

    /// <summary>
    /// The workload binding required beside <see cref="Components"/>: SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48),
    /// or null when the pin requires none (then any value passes, as before the field existed).
    /// </summary>
    public ReadOnlyMemory<byte>? Workload =>
        // Spelled out: a null byte[] converts to an empty ReadOnlyMemory, which would read as "required, zero bytes".
        _workload is null ? (ReadOnlyMemory<byte>?)null : new ReadOnlyMemory<byte>(_workload);

    /// <summary>True when the pin requires the KMS's HOST_DATA / MRCONFIGID, so it binds the workload, not only the launch image.</summary>
    public bool BindsWorkload => _workload is not null;

    /// <summary>An SNP launch MEASUREMENT (48 bytes).</summary>
    public static KmsMeasurementPin Snp(ReadOnlySpan<byte> measurement) =>
        new(TeeType.Snp, [Exactly(measurement, Sha384Length, "an SNP MEASUREMENT")]);

    /// <summary>An SNP launch MEASUREMENT (48 bytes) and the HOST_DATA (32 bytes, not all zeros) that binds the workload.</summary>
    public static KmsMeasurementPin Snp(ReadOnlySpan<byte> measurement, ReadOnlySpan<byte> hostData) => Snp(measurement).WithWorkload(hostData);

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

    /// <summary>
    /// This pin requiring <paramref name="workload"/> as well: SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48), e.g. the
    /// initdata digest <c>morph export kms</c> prints, beside the Kata guest image's launch values.
    /// </summary>
    /// <exception cref="ArgumentException">An SGX pin (MRENCLAVE covers the enclave), another length, or all zeros.</exception>
    public KmsMeasurementPin WithWorkload(ReadOnlySpan<byte> workload)
    {
        var (name, length) = WorkloadField(Tee) ?? throw new ArgumentException("an SGX KMS is pinned by MRENCLAVE alone: it has no HOST_DATA or MRCONFIGID", nameof(workload));
        var value = Exactly(workload, length, $"{Article(Tee)} {Tee.ToWireName().ToUpperInvariant()} {name}");
        if (!value.AsSpan().ContainsAnyExcept((byte)0))
        {
            throw new ArgumentException($"a {name} of all zeros binds no workload (it is what a pod without initdata shows)", nameof(workload));
        }

        return new KmsMeasurementPin(Tee, _components, value);
    }

    /// <summary>
    /// What <paramref name="claims"/> attest, in the typed form: the pin such a KMS matches. For SNP and TDX it carries
    /// HOST_DATA / MRCONFIGID when they are not all zeros, so the pin printed for a KMS in a Kata VM binds its workload.
    /// </summary>
    public static KmsMeasurementPin Of(EvidenceClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        var launch = claims switch
        {
            TdxClaims tdx => Tdx(tdx.MrTd.Span, tdx.Rtmr0.Span, tdx.Rtmr1.Span, tdx.Rtmr2.Span, tdx.Rtmr3.Span),
            SgxClaims sgx => Sgx(sgx.Measurement.Span),
            SnpClaims snp => Snp(snp.Measurement.Span),
            _ => throw new ArgumentException($"no KMS measurement form for {claims.Tee.ToWireName()} claims", nameof(claims)),
        };
        var workload = WorkloadOf(claims);
        return workload.Span.ContainsAnyExcept((byte)0) ? launch.WithWorkload(workload.Span) : launch;
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

        // The launch values, then key=value items after commas: the only one is the TEE's workload binding.
        var items = body.Split(',');
        var launch = tee switch
        {
            TeeType.Snp => Snp(Component(items[0], Sha384Length, "snp: MEASUREMENT")),
            TeeType.Sgx => Sgx(Component(items[0], MrEnclaveLength, "sgx: MRENCLAVE")),
            _ => ParseTdx(items[0]),
        };
        return items.Length == 1 ? launch : ParseWorkload(launch, items[1..]);
    }

    /// <summary>True when <paramref name="text"/> names its TEE (has a <c>tee:</c> prefix).</summary>
    public static bool IsTyped(string text) => text?.Contains(':', StringComparison.Ordinal) == true;

    /// <summary>The typed form for one TEE, for messages that tell the user what to give.</summary>
    public static string SyntaxFor(TeeType tee) => tee switch
    {
        TeeType.Snp => "snp:MEASUREMENT,host_data=HEX (96 and 64 hex digits; host_data may be left out only for a KMS whose launch image is its own)",
        TeeType.Sgx => "sgx:MRENCLAVE (64 hex digits)",
        _ => "tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3,mrconfigid=HEX (96 hex digits each; mrconfigid may be left out only for a KMS whose launch image is its own)",
    };

    /// <summary>
    /// The report field that binds a Kata pod's workload for <paramref name="tee"/> and its key in the text form:
    /// SNP (<c>HOST_DATA</c>, <c>host_data</c>), TDX (<c>MRCONFIGID</c>, <c>mrconfigid</c>); null for SGX.
    /// </summary>
    public static (string Field, string Key)? WorkloadFieldOf(TeeType tee) => WorkloadField(tee) is { } f ? (f.Name, KeyOf(tee)) : null;

    /// <summary>True when <paramref name="claims"/> come from this pin's TEE and show every one of its values.</summary>
    public bool Matches(EvidenceClaims claims) => Mismatch(claims) is null;

    /// <summary>
    /// Why <paramref name="claims"/> do not match (the TEE, or the components that differ, by name: <c>MEASUREMENT
    /// differs</c>, <c>RTMR1, RTMR2 differ</c>, <c>HOST_DATA differs</c>), or null when they do.
    /// </summary>
    public string? Mismatch(EvidenceClaims claims)
    {
        ArgumentNullException.ThrowIfNull(claims);
        if (claims.Tee != Tee)
        {
            return $"{Tee.ToWireName()}, not {claims.Tee.ToWireName()}";
        }

        var attested = Of(claims);
        var differing = Differing(attested._components, WorkloadOf(claims).Span);
        if (differing.Count == 0)
        {
            return null;
        }

        var message = string.Join(", ", differing) + (differing.Count == 1 ? " differs" : " differ");
        return _workload is not null && attested._workload is null
            ? $"{message} (the KMS's {WorkloadField(Tee)!.Value.Name} is all zeros: it was started without initdata)"
            : message;
    }

    /// <summary>
    /// True when a KMS that attested <paramref name="attested"/> (the pin <see cref="Of"/> gave for its claims) matches
    /// this pin: same TEE and launch values, and, when this pin requires a workload binding, the same one. A KMS recorded
    /// without one (before <see cref="Of"/> wrote it, or with none) does not match a pin that requires it.
    /// </summary>
    public bool Accepts(KmsMeasurementPin attested)
    {
        ArgumentNullException.ThrowIfNull(attested);
        return attested.Tee == Tee
            && Differing(attested._components, attested._workload is { } w ? w : new byte[_workload?.Length ?? 0]).Count == 0;
    }

    /// <summary>
    /// The typed form, lowercase hex: <c>snp:…</c>, <c>sgx:…</c>, <c>tdx:…/…/…/…/…</c>, with <c>,host_data=…</c> or
    /// <c>,mrconfigid=…</c> when the pin requires it.
    /// </summary>
    public override string ToString() =>
        $"{Tee.ToWireName()}:{string.Join('/', _components.Select(Convert.ToHexStringLower))}"
        + (_workload is { } w ? $",{KeyOf(Tee)}={Convert.ToHexStringLower(w)}" : string.Empty);

    /// <inheritdoc />
    public bool Equals(KmsMeasurementPin? other) => other is not null && string.Equals(ToString(), other.ToString(), StringComparison.Ordinal);

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as KmsMeasurementPin);

    /// <inheritdoc />
    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(ToString());

    /// <summary>The names of the components of this pin that differ from <paramref name="launch"/> and <paramref name="workload"/>.</summary>
    private List<string> Differing(byte[][] launch, ReadOnlySpan<byte> workload)
    {
        // Every component is compared, in constant time: the message names all that differ, and no timing says how far
        // a guess got (the values are public, but a pin comparison has no reason to leak either).
        var names = Tee switch { TeeType.Snp => SnpNames, TeeType.Sgx => SgxNames, _ => TdxNames };
        var differing = new List<string>();
        for (var i = 0; i < _components.Length; i++)
        {
            if (!CryptographicOperations.FixedTimeEquals(launch[i], _components[i]))
            {
                differing.Add(names[i]);
            }
        }

        if (_workload is not null && !CryptographicOperations.FixedTimeEquals(workload, _workload))
        {
            differing.Add(WorkloadField(Tee)!.Value.Name);
        }

        return differing;
    }

    private static ReadOnlyMemory<byte> WorkloadOf(EvidenceClaims claims) => claims switch
    {
        SnpClaims snp => snp.HostData,
        TdxClaims tdx => tdx.MrConfigId,
        _ => ReadOnlyMemory<byte>.Empty,
    };

    private static (string Name, int Length)? WorkloadField(TeeType tee) => tee switch
    {
        TeeType.Snp => ("HOST_DATA", HostDataLength),
        TeeType.Tdx => ("MRCONFIGID", Sha384Length),
        _ => null,
    };

    private static string KeyOf(TeeType tee) => tee == TeeType.Tdx ? MrConfigIdKey : HostDataKey;

    private static string Article(TeeType tee) => tee == TeeType.Snp ? "an" : "a";

    private static KmsMeasurementPin ParseWorkload(KmsMeasurementPin launch, string[] items)
    {
        var tee = launch.Tee.ToWireName();
        if (WorkloadField(launch.Tee) is not { } field)
        {
            throw new FormatException($"sgx: takes nothing after MRENCLAVE, which measures the whole enclave ({HostDataKey}= is for snp:, {MrConfigIdKey}= for tdx:)");
        }

        var key = KeyOf(launch.Tee);
        var expected = $"{key}=HEX ({2 * field.Length} hex digits, the KMS's {field.Name}: its initdata digest, as `morph export kms` prints it)";
        if (items.Length > 1)
        {
            throw new FormatException($"{tee}: {items.Length} items after the measurement; a KMS pin takes one, {expected}");
        }

        var item = items[0];
        var equals = item.IndexOf('=', StringComparison.Ordinal);
        var name = (equals < 0 ? item : item[..equals]).Trim();
        if (!string.Equals(name, key, StringComparison.OrdinalIgnoreCase))
        {
            var other = KeyOf(launch.Tee == TeeType.Tdx ? TeeType.Snp : TeeType.Tdx);
            throw new FormatException(string.Equals(name, other, StringComparison.OrdinalIgnoreCase)
                ? $"{tee}: {other} is {(other == HostDataKey ? "SNP's" : "TDX's")}; a {tee} KMS's workload is bound by {expected}"
                : $"{tee}: '{name}' is not a KMS pin field: after the measurement give {expected}");
        }

        if (equals < 0)
        {
            throw new FormatException($"{tee}: {key} has no value: give {expected}");
        }

        var value = Component(item[(equals + 1)..], field.Length, $"{tee}: {key}");
        if (!value.AsSpan().ContainsAnyExcept((byte)0))
        {
            throw new FormatException($"{tee}: {key} of all zeros binds no workload (it is what a pod without initdata shows): "
                + $"leave it out, or give {expected}");
        }

        return launch.WithWorkload(value);
    }

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
