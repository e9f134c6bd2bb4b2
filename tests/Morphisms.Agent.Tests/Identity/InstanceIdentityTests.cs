using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Agent.Identity;
using Morphisms.Agent.Kms;

namespace Morphisms.Agent.Tests.Identity;

/// <summary>
/// The serving certificate a login yields: the KMS's certificate must certify the key the instance attested, and only
/// then is it served with that key and the KMS's CA chain.
/// </summary>
public sealed class InstanceIdentityTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.UtcNow;

    [Fact]
    public void ACertificateForAnotherKey_IsRefused()
    {
        using var identity = new InstanceIdentity("signer");
        using var ca = NewCa();
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var login = LoginWith(IssueFor(otherKey, ca), ca);

        var e = Assert.Throws<AgentException>(() => identity.Certificate(login, TimeProvider.System));

        Assert.Equal(AgentExitCodes.AttestationRefused, e.ExitCode);
        Assert.Contains("different key", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheIssuedCertificate_IsServedWithTheKeyAndTheChain()
    {
        using var identity = new InstanceIdentity("signer");
        using var ca = NewCa();
        var login = LoginWith(IssueFor(identity, ca), ca);

        var served = identity.Certificate(login, TimeProvider.System);

        Assert.True(served.Issued);
        Assert.True(served.Certificate.HasPrivateKey);
        Assert.Equal(identity.Spki, served.Certificate.PublicKey.ExportSubjectPublicKeyInfo());
        Assert.Equal(ca.RawData, Assert.Single(served.Chain).RawData);
    }

    [Fact]
    public void NoIssuedCertificate_ServesASelfSignedOneForTheSameKey()
    {
        using var identity = new InstanceIdentity("signer");
        var login = new LoginResult("token", TimeSpan.FromMinutes(1), true, "", [], "1", null);

        var served = identity.Certificate(login, TimeProvider.System);

        Assert.False(served.Issued);
        Assert.Equal(identity.Spki, served.Certificate.PublicKey.ExportSubjectPublicKeyInfo());
        Assert.Empty(served.Chain);
    }

    private static X509Certificate2 NewCa()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=test functions CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        return request.CreateSelfSigned(Now.AddHours(-1), Now.AddHours(1));
    }

    private static string IssueFor(InstanceIdentity identity, X509Certificate2 ca) =>
        Sign(CertificateRequest.LoadSigningRequestPem(identity.CsrPem, HashAlgorithmName.SHA256), ca);

    private static string IssueFor(ECDsa key, X509Certificate2 ca) =>
        Sign(new CertificateRequest("CN=signer", key, HashAlgorithmName.SHA256), ca);

    private static string Sign(CertificateRequest request, X509Certificate2 ca)
    {
        using var signer = ca.GetECDsaPrivateKey()!;
        using var leaf = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(signer), Now.AddMinutes(-5), Now.AddMinutes(30), [1, 2, 3]);
        return leaf.ExportCertificatePem();
    }

    private static LoginResult LoginWith(string certificatePem, X509Certificate2 ca) =>
        new("token", TimeSpan.FromMinutes(1), true, certificatePem, [ca.ExportCertificatePem()], "1", null);
}
