using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Tests.Pki;

/// <summary>The issuer's last-leaf expiry moves in whole hours and always covers the leaf.</summary>
public sealed class LastLeafBucketTests
{
    [Theory]
    [InlineData("2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z")]
    [InlineData("2026-11-22T10:00:00.0000001Z", "2026-11-22T11:00:00Z")]
    [InlineData("2026-11-22T10:59:59Z", "2026-11-22T11:00:00Z")]
    [InlineData("2026-12-31T23:30:00Z", "2027-01-01T00:00:00Z")]
    public void Rounds_up_to_the_hour(string notAfter, string expected)
    {
        var bucket = PkiBackend.LastLeafBucket(DateTimeOffset.Parse(notAfter, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), bucket);
    }
}
