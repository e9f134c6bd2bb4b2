using System.Security.Cryptography;
using System.Text;
using Morphisms.Attestation.Binding;

namespace Morphisms.Attestation.Tests.Binding;

public class ReportDataBindingTests
{
    [Fact]
    public void Function_binding_is_sha512_of_domain_nonce_and_key_hash()
    {
        var nonce = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var spki = key.ExportSubjectPublicKeyInfo();
        byte[] expected = SHA512.HashData([.. Encoding.ASCII.GetBytes("morphisms/attest/v1"), .. nonce, .. SHA256.HashData(spki)]);
        Assert.Equal(expected, ReportDataBinding.ForFunction(nonce, spki));
        Assert.Equal(64, expected.Length);
    }

    [Fact]
    public void Kms_binding_covers_the_tls_key_and_the_root_ca()
    {
        var nonce = RandomNumberGenerator.GetBytes(32);
        var tlsSpki = RandomNumberGenerator.GetBytes(91);
        var rootCa = RandomNumberGenerator.GetBytes(400);
        byte[] expected = SHA512.HashData([.. Encoding.ASCII.GetBytes("morphisms/kms/v1"), .. nonce, .. SHA256.HashData(tlsSpki), .. SHA256.HashData(rootCa)]);
        Assert.Equal(expected, ReportDataBinding.ForKms(nonce, tlsSpki, rootCa));
        rootCa[0] ^= 1;
        Assert.NotEqual(expected, ReportDataBinding.ForKms(nonce, tlsSpki, rootCa));
    }

    [Fact]
    public void Function_and_kms_domains_never_collide()
    {
        var nonce = new byte[32];
        var spki = new byte[32];
        Assert.NotEqual(ReportDataBinding.ForFunction(nonce, spki), ReportDataBinding.ForKms(nonce, spki, []));
    }

    [Fact]
    public void Matches_requires_equal_length_and_content()
    {
        var a = RandomNumberGenerator.GetBytes(64);
        Assert.True(ReportDataBinding.Matches(a, (byte[])a.Clone()));
        Assert.False(ReportDataBinding.Matches(a, a[..63]));
        var b = (byte[])a.Clone();
        b[63] ^= 1;
        Assert.False(ReportDataBinding.Matches(a, b));
    }
}
