using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Agent.Kms;

namespace Morphisms.Agent.Tests.Secrets;

/// <summary>Where the KMS pin comes from, and what it accepts.</summary>
public sealed class PinTests
{
    private static readonly string Hex = new('a', 64);

    [Fact]
    public void LaunchConfigurationPinWins_AndMustAgreeWithFlags()
    {
        var config = Encoding.UTF8.GetBytes($$"""{"kms_ca_sha256":"{{Hex}}"}""");
        Assert.Equal(Convert.FromHexString(Hex), AgentCli.Pin(null, null, config));
        Assert.Equal(Convert.FromHexString(Hex), AgentCli.Pin(null, Hex, config));
        Assert.Equal(AgentExitCodes.Usage, Assert.Throws<AgentException>(() => AgentCli.Pin(null, new string('b', 64), config)).ExitCode);
        Assert.Equal(AgentExitCodes.Usage, Assert.Throws<AgentException>(() => AgentCli.Pin(null, null, [])).ExitCode);
        Assert.Equal(AgentExitCodes.Usage, Assert.Throws<AgentException>(() => AgentCli.Pin(null, "abc", [])).ExitCode);
    }

    [Fact]
    public void AcceptsAChainThroughThePinnedCa_RejectsOthers()
    {
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Test KMS Root", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var leaf = new CertificateRequest("CN=kms", leafKey, HashAlgorithmName.SHA256)
            .Create(ca, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1), [1, 2, 3]);
        using var chain = new X509Chain();
        chain.ChainPolicy.ExtraStore.Add(ca);

        var pin = new KmsPin(SHA256.HashData(ca.RawData), TimeProvider.System);
        Assert.True(pin.Check(leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out _));

        var other = new KmsPin(RandomNumberGenerator.GetBytes(32), TimeProvider.System);
        Assert.False(other.Check(leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out var reason));
        Assert.Contains("pinned SHA-256", reason);

        // The pinned CA must be presented: a leaf alone cannot be chained to a hash.
        using var empty = new X509Chain();
        Assert.False(pin.Check(leaf, empty, SslPolicyErrors.RemoteCertificateChainErrors, out _));
        Assert.False(pin.Check(leaf, chain, SslPolicyErrors.RemoteCertificateNameMismatch, out _));
    }
}
