using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Kms.Tests.Pki;

/// <summary>Intermediate rotation: the old issuer stays in the served chain until its last leaf expires.</summary>
public sealed class PkiRotationTests
{
    [Fact]
    public async Task Leaves_from_before_a_rotation_keep_validating_against_the_served_chain_until_they_expire()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true })).Expect(204);
        var before = (await c.PostAsync("pki/issue/svc", new { common_name = "old.svc.local", ttl = "48h" })).Expect(200).Data;
        var oldIssuer = before["issuer_id"]!.GetValue<string>();

        var rotated = (await c.PostAsync("pki/intermediate/rotate")).Expect(200).Data;
        var newIssuer = rotated["issuer_id"]!.GetValue<string>();
        Assert.Equal(oldIssuer, rotated["previous_issuer_id"]!.GetValue<string>());
        Assert.NotEqual(oldIssuer, newIssuer);
        var after = (await c.PostAsync("pki/issue/svc", new { common_name = "new.svc.local", ttl = "1h" })).Expect(200).Data;
        Assert.Equal(newIssuer, after["issuer_id"]!.GetValue<string>());

        var issuers = (await c.ListAsync("pki/issuers")).Expect(200).Data;
        Assert.Equal("active", issuers["key_info"]![newIssuer]!["state"]!.GetValue<string>());
        Assert.Equal("retiring", issuers["key_info"]![oldIssuer]!["state"]!.GetValue<string>());
        Assert.Equal(newIssuer, issuers["default"]!.GetValue<string>());

        // One served bundle validates both leaves, pinned to the root alone.
        var served = PkiAssert.Certificates([(await c.GetAsync("pki/ca_chain")).Expect(200).Raw]);
        Assert.Equal(3, served.Count);
        var root = served.Single(s => s.SubjectName.RawData.AsSpan().SequenceEqual(s.IssuerName.RawData));
        var at = kms.Time.GetUtcNow().AddMinutes(1);
        var bundle = string.Concat(served.Select(s => s.ExportCertificatePem() + "\n"));
        foreach (var leafPem in new[] { before["certificate"]!.GetValue<string>(), after["certificate"]!.GetValue<string>() })
        {
            using var leaf = X509Certificate2.CreateFromPem(leafPem);
            PkiAssert.Chains(leaf, root, served, at);
            PkiAssert.OpensslVerifies(leafPem, root.ExportCertificatePem(), [bundle], at);
        }

        // The CRL of the old issuer still lists its revocations.
        (await c.PostAsync("pki/revoke", new { serial_number = before["serial_number"]!.GetValue<string>() })).Expect(200);
        var oldCrl = Morphisms.Attestation.Verify.CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes((await c.GetAsync($"pki/issuer/{oldIssuer}/crl/pem")).Expect(200).Raw));
        Assert.Equal(1, oldCrl.RevokedCount);
        Assert.Equal(0, Morphisms.Attestation.Verify.CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes((await c.GetAsync("pki/crl/pem")).Expect(200).Raw)).RevokedCount);

        // Once the old issuer's last leaf has expired it leaves the chain.
        kms.Time.Advance(TimeSpan.FromHours(49));
        Assert.Equal("retired", (await c.GetAsync("pki/issuer/" + oldIssuer)).Expect(200).Data["state"]!.GetValue<string>());
        Assert.Equal(2, PkiAssert.Certificates([(await c.GetAsync("pki/ca_chain")).Expect(200).Raw]).Count);
    }

    [Fact]
    public async Task Function_intermediates_are_P256_under_the_P384_root_unless_a_rotation_asks_for_P384()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true })).Expect(204);
        var first = (await c.PostAsync("pki/issue/svc", new { common_name = "a.svc.local", ttl = "1h" })).Expect(200).Data;
        Assert.Equal(256, KeyBitsOf(first["issuing_ca"]!.GetValue<string>()));
        var served = PkiAssert.Certificates([(await c.GetAsync("pki/ca_chain")).Expect(200).Raw]);
        Assert.Equal(384, KeyBitsOf(served.Single(s => s.SubjectName.RawData.AsSpan().SequenceEqual(s.IssuerName.RawData)).ExportCertificatePem()));
        using (var leaf = X509Certificate2.CreateFromPem(first["certificate"]!.GetValue<string>()))
        {
            Assert.Equal("1.2.840.10045.4.3.2", leaf.SignatureAlgorithm.Value); // ecdsa-with-SHA256, matching the P-256 issuer
        }

        var rotated = (await c.PostAsync("pki/intermediate/rotate", new { key_bits = 384 })).Expect(200).Data;
        Assert.Equal(384, KeyBitsOf(rotated["certificate"]!.GetValue<string>()));
        var after = (await c.PostAsync("pki/issue/svc", new { common_name = "b.svc.local", ttl = "1h" })).Expect(200).Data;
        using (var leaf = X509Certificate2.CreateFromPem(after["certificate"]!.GetValue<string>()))
        {
            Assert.Equal("1.2.840.10045.4.3.3", leaf.SignatureAlgorithm.Value); // ecdsa-with-SHA384
        }

        // A size the CA does not support is refused and changes nothing.
        var issuers = (await c.ListAsync("pki/issuers")).Expect(200).Data["keys"]!.AsArray().Count;
        Assert.Contains("'key_bits'", (await c.PostAsync("pki/intermediate/rotate", new { key_bits = 521 })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'key_type'", (await c.PostAsync("pki/intermediate/rotate", new { key_type = "rsa" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Equal(issuers, (await c.ListAsync("pki/issuers")).Expect(200).Data["keys"]!.AsArray().Count);
    }

    private static int KeyBitsOf(string pem)
    {
        using var certificate = X509Certificate2.CreateFromPem(pem);
        using var key = certificate.GetECDsaPublicKey()!;
        return key.KeySize;
    }
}
