namespace Morphisms.Attestation.Abi.Snp;

/// <summary>An SNP firmware version (major.minor.build), as in CURRENT_* and COMMITTED_* of the report.</summary>
/// <param name="Major">Major version.</param>
/// <param name="Minor">Minor version.</param>
/// <param name="Build">Build number.</param>
public readonly record struct SnpFirmwareVersion(byte Major, byte Minor, byte Build) : IComparable<SnpFirmwareVersion>
{
    /// <inheritdoc />
    public int CompareTo(SnpFirmwareVersion other) =>
        Major != other.Major ? Major.CompareTo(other.Major)
        : Minor != other.Minor ? Minor.CompareTo(other.Minor)
        : Build.CompareTo(other.Build);

    /// <summary>True when this version is at least <paramref name="minimum"/>.</summary>
    public bool IsAtLeast(SnpFirmwareVersion minimum) => CompareTo(minimum) >= 0;

    /// <summary>Parses <c>major.minor.build</c>, e.g. <c>1.55.40</c>.</summary>
    public static SnpFirmwareVersion Parse(string text)
    {
        var parts = text.Trim().Split('.');
        if (parts.Length != 3
            || !byte.TryParse(parts[0], out var major)
            || !byte.TryParse(parts[1], out var minor)
            || !byte.TryParse(parts[2], out var build))
        {
            throw new FormatException($"firmware version '{text}': expected major.minor.build with each part 0-255");
        }

        return new SnpFirmwareVersion(major, minor, build);
    }

    /// <inheritdoc />
    public override string ToString() => $"{Major}.{Minor}.{Build}";
}
