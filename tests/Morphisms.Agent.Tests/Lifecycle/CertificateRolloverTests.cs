using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Agent.Lifecycle;

namespace Morphisms.Agent.Tests.Lifecycle;

/// <summary>
/// When the maintainer replaces a function certificate: two thirds through the life it had left on arrival, not two
/// thirds from its NotBefore, which the KMS backdates by 30 s.
/// </summary>
public sealed class CertificateRolloverTests
{
    private static readonly DateTimeOffset Issued = new(2030, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(60, 40)]
    [InlineData(15 * 60, 10 * 60)]
    [InlineData(15, 10)]
    public void A_backdated_certificate_rolls_over_two_thirds_through_the_life_it_had_left_when_it_came(int ttlSeconds, int dueAfterSeconds)
    {
        // As the KMS issues them: valid from 30 s before issue, until issue + TTL.
        using var certificate = Certificate(Issued.AddSeconds(-30), Issued.AddSeconds(ttlSeconds));

        Assert.Equal(Issued.AddSeconds(dueAfterSeconds), SessionMaintainer.CertificateRolloverAt(certificate, Issued));
    }

    [Fact]
    public void A_clock_behind_the_kms_counts_from_the_not_before()
    {
        // Received "before" it became valid by this clock: its own validity is all there is to go by.
        using var certificate = Certificate(Issued.AddSeconds(-30), Issued.AddSeconds(60));

        Assert.Equal(Issued.AddSeconds(30), SessionMaintainer.CertificateRolloverAt(certificate, Issued.AddMinutes(-5)));
    }

    [Fact]
    public void A_certificate_expired_on_arrival_by_this_clock_is_due_at_once()
    {
        using var certificate = Certificate(Issued.AddSeconds(-30), Issued.AddSeconds(60));
        var received = Issued.AddMinutes(5);

        Assert.True(SessionMaintainer.CertificateRolloverAt(certificate, received) <= received);
    }

    private static X509Certificate2 Certificate(DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return new CertificateRequest("CN=fn", key, HashAlgorithmName.SHA256).CreateSelfSigned(notBefore, notAfter);
    }
}
