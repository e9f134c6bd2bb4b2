using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Attestation.Trust;
using Morphisms.Testing;

namespace Morphisms.Attestation.Tests.Trust;

/// <summary>What the KMS pin accepts: a chain that validates, signatures included, up to the pinned certificate.</summary>
public sealed class KmsPinTests
{
    [Fact]
    public void AcceptsAChainThroughThePinnedCa_RejectsOthers()
    {
        using var ca = TestCertificates.Ca("CN=Test KMS Root");
        using var leaf = Leaf(ca);
        using var chain = Presented(ca);

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

    [Fact]
    public void ACopyOfThePinnedCa_DoesNotVouchForALeafItDidNotSign()
    {
        using var ca = TestCertificates.Ca("CN=Test KMS Root");

        // Same issuer name, and the pinned CA's key identifier: only the signature is wrong.
        using var impostor = TestCertificates.Ca("CN=Test KMS Root");
        using var forged = Leaf(impostor, named: ca);
        using var chain = Presented(ca);

        var pin = new KmsPin(SHA256.HashData(ca.RawData), TimeProvider.System);
        Assert.False(pin.Check(forged, chain, SslPolicyErrors.RemoteCertificateChainErrors, out var reason));
        Assert.Contains("does not validate to the pinned CA", reason);
    }

    [Fact]
    public void ACaIssuedChain_CanBePinnedAtTheCertificatesItServes()
    {
        // TLS servers leave a self-signed root out, so the client sees leaf and intermediate only.
        using var root = TestCertificates.Ca("CN=Test Enterprise Root");
        using var intermediate = TestCertificates.Ca("CN=Test KMS CA", issuer: root);
        using var leaf = Leaf(intermediate);
        using var chain = Presented(intermediate);

        Assert.True(new KmsPin(SHA256.HashData(intermediate.RawData), TimeProvider.System).Check(leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out var reason), reason);
        Assert.True(new KmsPin(SHA256.HashData(leaf.RawData), TimeProvider.System).Check(leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out reason), reason);

        // The root itself cannot be pinned by hash when it is not presented.
        Assert.False(new KmsPin(SHA256.HashData(root.RawData), TimeProvider.System).Check(leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out reason));
        Assert.Contains("pinned SHA-256", reason);

        // Presented, it anchors the whole chain.
        chain.ChainPolicy.ExtraStore.Add(root);
        Assert.True(new KmsPin(SHA256.HashData(root.RawData), TimeProvider.System).Check(leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out reason), reason);
    }

    [Fact]
    public void APinnedIntermediate_DoesNotVouchForALeafItDidNotSign_NorWhenExpired()
    {
        using var root = TestCertificates.Ca("CN=Test Enterprise Root");
        using var intermediate = TestCertificates.Ca("CN=Test KMS CA", issuer: root);
        using var impostor = TestCertificates.Ca("CN=Test KMS CA");
        using var forged = Leaf(impostor, named: intermediate);
        using var chain = Presented(intermediate);
        var pin = new KmsPin(SHA256.HashData(intermediate.RawData), TimeProvider.System);

        Assert.False(pin.Check(forged, chain, SslPolicyErrors.RemoteCertificateChainErrors, out var reason));
        Assert.Contains("does not validate to the pinned CA", reason);

        // Three hours on, the pinned intermediate (valid ±2 h) and its leaf have expired.
        using var genuine = Leaf(intermediate);
        var later = new KmsPin(SHA256.HashData(intermediate.RawData), new FixedClock(DateTimeOffset.UtcNow.AddHours(3)));
        Assert.False(later.Check(genuine, chain, SslPolicyErrors.RemoteCertificateChainErrors, out reason));
        Assert.Contains("does not validate to the pinned CA", reason);
    }

    [Fact]
    public void AnExpiredLeaf_IsRefused_ByThePinsClock()
    {
        using var ca = TestCertificates.Ca("CN=Test KMS Root");
        using var leaf = Leaf(ca);
        using var chain = Presented(ca);

        var later = new KmsPin(SHA256.HashData(ca.RawData), new FixedClock(DateTimeOffset.UtcNow.AddDays(3)));
        Assert.False(later.Check(leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out var reason));
        Assert.Contains("does not validate to the pinned CA", reason);
    }

    [Fact]
    public void TheKmsPkiRoot_OrAChainThroughOneOfItsIntermediates_IsRefused_EvenWhenItValidates()
    {
        // The KMS's PKI root and its intermediates also sign role leaves for any name a role allows.
        using var pkiRoot = MarkedCa("CN=Morphisms KMS Root CA", issuer: null);
        using var pkiIntermediate = MarkedCa("CN=Morphisms Functions Intermediate CA", pkiRoot);
        using var roleLeaf = Leaf(pkiIntermediate);
        using var chain = Presented(pkiIntermediate);
        chain.ChainPolicy.ExtraStore.Add(pkiRoot);

        foreach (var pinned in new[] { pkiRoot, pkiIntermediate })
        {
            Assert.False(new KmsPin(SHA256.HashData(pinned.RawData), TimeProvider.System).Check(roleLeaf, chain, SslPolicyErrors.RemoteCertificateChainErrors, out var reason));
            Assert.Contains("the pinned certificate is the KMS's PKI root CA or an intermediate of it", reason);
            Assert.Contains("Pin the CA that issued the KMS's TLS certificate", reason);
        }

        // A root from before the marker existed (unmarked) is still refused through a marked intermediate.
        using var legacyRoot = TestCertificates.Ca("CN=Morphisms KMS Root CA");
        using var newIntermediate = MarkedCa("CN=Morphisms Functions Intermediate CA", legacyRoot);
        using var leaf = Leaf(newIntermediate);
        using var legacyChain = Presented(newIntermediate);
        legacyChain.ChainPolicy.ExtraStore.Add(legacyRoot);
        Assert.False(new KmsPin(SHA256.HashData(legacyRoot.RawData), TimeProvider.System).Check(leaf, legacyChain, SslPolicyErrors.RemoteCertificateChainErrors, out var legacyReason));
        Assert.Contains("'CN=Morphisms Functions Intermediate CA' in the KMS TLS chain is the KMS's PKI root CA", legacyReason);

        // The same shape without the marker (an operator's CA) is accepted.
        using var operatorRoot = TestCertificates.Ca("CN=Operator Root");
        using var operatorCa = TestCertificates.Ca("CN=Operator KMS CA", operatorRoot);
        using var kmsLeaf = Leaf(operatorCa);
        using var operatorChain = Presented(operatorCa);
        operatorChain.ChainPolicy.ExtraStore.Add(operatorRoot);
        Assert.True(new KmsPin(SHA256.HashData(operatorRoot.RawData), TimeProvider.System).Check(kmsLeaf, operatorChain, SslPolicyErrors.RemoteCertificateChainErrors, out var accepted), accepted);
    }

    [Fact]
    public void Validate_RecordsTheLastRefusal_AndClearsItOnSuccess()
    {
        using var ca = TestCertificates.Ca("CN=Test KMS Root");
        using var leaf = Leaf(ca);
        using var chain = Presented(ca);
        var pin = new KmsPin(SHA256.HashData(ca.RawData), TimeProvider.System);

        Assert.False(pin.Validate(null, null, null, SslPolicyErrors.RemoteCertificateNotAvailable));
        Assert.Contains("no certificate", pin.LastFailure);
        Assert.True(pin.Validate(null, leaf, chain, SslPolicyErrors.RemoteCertificateChainErrors));
        Assert.Null(pin.LastFailure);
        Assert.Throws<ArgumentException>(() => new KmsPin(new byte[20], TimeProvider.System));
    }

    private static X509Certificate2 Leaf(X509Certificate2 signer, X509Certificate2? named = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kms", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(named ?? signer, true, false));
        return request.Create(signer, DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddHours(1), RandomNumberGenerator.GetBytes(8));
    }

    /// <summary>A CA carrying the KMS PKI CA marker, self-signed or issued by <paramref name="issuer"/>.</summary>
    private static X509Certificate2 MarkedCa(string name, X509Certificate2? issuer)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(KmsPkiCaMarker.ToExtension());
        if (issuer is null)
        {
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        using var issued = request.Create(issuer, DateTimeOffset.UtcNow.AddHours(-2), DateTimeOffset.UtcNow.AddHours(2), RandomNumberGenerator.GetBytes(8));
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>What a TLS stack hands the callback: the server's extra certificates in the chain policy's extra store.</summary>
    private static X509Chain Presented(X509Certificate2 ca)
    {
        var chain = new X509Chain();
        chain.ChainPolicy.ExtraStore.Add(ca);
        return chain;
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
