using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Binding;

namespace Morphisms.Attestation.Tests.Binding;

/// <summary>The statement a KMS signs with its root CA key, byte for byte, and what verifies against it.</summary>
public class KmsRootCaProofTests
{
    [Fact]
    public void The_statement_is_the_label_a_nul_the_nonce_with_its_length_and_the_two_hashes()
    {
        var nonce = RandomNumberGenerator.GetBytes(32);
        var tlsSpki = RandomNumberGenerator.GetBytes(91);
        var rootCa = RandomNumberGenerator.GetBytes(400);
        byte[] expected = [.. Encoding.ASCII.GetBytes("morphisms/kms/root-ca-proof/v1"), 0, 32, .. nonce, .. SHA256.HashData(tlsSpki), .. SHA256.HashData(rootCa)];

        Assert.Equal(expected, KmsRootCaProof.Statement(nonce, tlsSpki, rootCa));
        Assert.Throws<ArgumentException>(() => KmsRootCaProof.Statement([], tlsSpki, rootCa));
        Assert.Throws<ArgumentException>(() => KmsRootCaProof.Statement(new byte[256], tlsSpki, rootCa));
    }

    [Fact]
    public void A_proof_verifies_only_with_the_roots_key_for_the_same_nonce_tls_key_and_root()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var root = new CertificateRequest("CN=root", key, HashAlgorithmName.SHA384).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var nonce = RandomNumberGenerator.GetBytes(32);
        var tlsSpki = RandomNumberGenerator.GetBytes(91);

        var proof = KmsRootCaProof.Sign(key, nonce, tlsSpki, root.RawData);

        Assert.True(KmsRootCaProof.Verify(root, nonce, tlsSpki, proof));
        Assert.True(key.VerifyData(KmsRootCaProof.Statement(nonce, tlsSpki, root.RawData), proof, HashAlgorithmName.SHA384, DSASignatureFormat.Rfc3279DerSequence));
        Assert.False(KmsRootCaProof.Verify(root, RandomNumberGenerator.GetBytes(32), tlsSpki, proof));
        Assert.False(KmsRootCaProof.Verify(root, nonce, RandomNumberGenerator.GetBytes(91), proof));
        Assert.False(KmsRootCaProof.Verify(root, nonce, tlsSpki, [.. proof[..^1], (byte)(proof[^1] ^ 1)]));
        Assert.False(KmsRootCaProof.Verify(root, nonce, tlsSpki, "not a signature"u8));

        // Another root with the same subject (a copy someone made) does not take the proof, nor does its key make one.
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        using var other = new CertificateRequest("CN=root", otherKey, HashAlgorithmName.SHA384).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        Assert.False(KmsRootCaProof.Verify(other, nonce, tlsSpki, proof));
        Assert.False(KmsRootCaProof.Verify(root, nonce, tlsSpki, KmsRootCaProof.Sign(otherKey, nonce, tlsSpki, root.RawData)));
    }

    [Fact]
    public void A_root_whose_key_is_not_ecdsa_proves_nothing()
    {
        using var rsa = RSA.Create(2048);
        using var root = new CertificateRequest("CN=rsa root", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1).CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var nonce = RandomNumberGenerator.GetBytes(32);

        Assert.False(KmsRootCaProof.Verify(root, nonce, [], rsa.SignData(KmsRootCaProof.Statement(nonce, [], root.RawData), HashAlgorithmName.SHA384, RSASignaturePadding.Pkcs1)));
    }
}
