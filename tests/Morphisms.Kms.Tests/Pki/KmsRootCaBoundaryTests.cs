using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Attestation.Trust;

namespace Morphisms.Kms.Tests.Pki;

/// <summary>
/// The KMS root CA (the root clients pin for function certificates) signs only what the KMS makes itself: its own
/// intermediates and, under them, attested function certificates. No API caller gets a CA certificate under it, a
/// key of it, or a certificate carrying an attested identity it chose.
/// </summary>
public sealed class KmsRootCaBoundaryTests
{
    private const string Refusal = "the KMS root CA issues only the KMS's own intermediates and attested function certificates";

    [Fact]
    public async Task No_caller_gets_a_ca_certificate_or_a_ca_key_under_the_kms_root()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;

        // The reviewer's policy: update anywhere under pki/ (what a role-issuing service account might be given).
        (await c.PutAsync("sys/policies/acl/pki-writer", new { policy = """path "pki/*" { capabilities = ["create", "read", "update", "list"] }""" })).Expect(204);
        var writer = (await c.PostAsync("auth/token/create", new { policies = new[] { "pki-writer" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var chainPem = (await c.GetAsync("pki/ca_chain")).Expect(200).Raw;

        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Attacker Intermediate", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        var csr = caRequest.CreateSigningRequestPem();
        using var selfIssued = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));

        var calls = new (string Path, object Body)[]
        {
            ("pki/root/sign-intermediate", new { csr, ttl = "8760h" }),
            ("pki/root/sign-intermediate", new { csr, common_name = "Morphisms Functions Intermediate CA" }),
            ("pki/intermediate/generate/internal", new { common_name = "x" }),
            ("pki/intermediate/generate/exported", new { common_name = "x" }),
            ("pki/intermediate/set-signed", new { certificate = selfIssued.ExportCertificatePem() + chainPem }),
            ("pki/root/generate/internal", new { common_name = "x" }),
            ("pki/root/generate/exported", new { common_name = "x" }),
        };

        // Neither the writer's token nor the root token: the refusal is the mount's, not the ACL's.
        foreach (var token in new[] { writer, kms.RootToken })
        {
            foreach (var (path, body) in calls)
            {
                var error = (await c.PostAsync(path, body, token)).Expect(400).Errors.Single();
                Assert.Contains(Refusal, error, StringComparison.Ordinal);
            }
        }

        // Routes Vault has for importing or signing as-is do not exist here at all.
        foreach (var path in new[] { "pki/root/sign-self-issued", "pki/sign-verbatim", "pki/sign-verbatim/any", "pki/issuers/import/bundle", "pki/config/ca", "pki/issuers/generate/root/internal" })
        {
            Assert.Equal(404, (await c.PostAsync(path, new { csr, pem_bundle = chainPem, certificate = chainPem }, kms.RootToken)).Status);
        }

        // Nothing was signed or stored: the mount has recorded no certificate and no issuer beyond its own first one.
        (await c.ListAsync("pki/certs")).Expect(404);
        var issuers = (await c.ListAsync("pki/issuers")).Expect(200).Data["keys"]!.AsArray();
        Assert.Single(issuers);
    }

    [Fact]
    public async Task The_kms_own_intermediates_and_function_certificates_keep_working()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { Tls = KmsTlsOptions.SelfSigned });
        var c = kms.Client;

        // The first intermediate is made on demand, rotation makes the next one; both by the KMS, keys never leave.
        var first = PkiAssert.Certificates([(await c.GetAsync("pki/ca_chain")).Expect(200).Raw]);
        var rotated = (await c.PostAsync("pki/intermediate/rotate", new { common_name = "Next Functions Intermediate" })).Expect(200).Data;
        Assert.Null(rotated["private_key"]);
        using var next = X509Certificate2.CreateFromPem(rotated["certificate"]!.GetValue<string>());
        Assert.Equal(first[^1].SubjectName.Name, next.IssuerName.Name);
        Assert.True(next.Extensions.OfType<X509BasicConstraintsExtension>().Single() is { CertificateAuthority: true, HasPathLengthConstraint: true, PathLengthConstraint: 0 });

        // Attest-login still gets its certificate from the rotated intermediate.
        await AttestFlow.RegisterSignerAsync(c);
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(c);
        var login = (await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce), nonce, instance.CsrPem)).Expect(200).Data;
        using var leaf = X509Certificate2.CreateFromPem(login["certificate"]!.GetValue<string>());
        Assert.Equal(next.SubjectName.Name, leaf.IssuerName.Name);
        Assert.Equal("signer", AttestedIdentityExtension.FromCertificate(leaf)!.Function);
        PkiAssert.Chains(leaf, first[^1], [next], kms.Time.GetUtcNow().AddMinutes(1));
    }

    [Fact]
    public async Task Role_leaves_under_the_kms_root_carry_no_attested_identity_and_are_never_cas()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/fn", new { allowed_domains = "fn.morphisms.local", allow_subdomains = true })).Expect(204);

        // A CSR asking to be a CA and to carry the attested identity of a function.
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=signer.fn.morphisms.local", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new AttestedIdentityExtension("snp", new byte[48], "signer", 1, new byte[32], false).ToExtension());
        var signed = (await c.PostAsync("pki/sign/fn", new { csr = request.CreateSigningRequestPem() })).Expect(200).Data;
        var issued = (await c.PostAsync("pki/issue/fn", new { common_name = "signer.fn.morphisms.local" })).Expect(200).Data;

        foreach (var data in new[] { signed, issued })
        {
            using var leaf = X509Certificate2.CreateFromPem(data["certificate"]!.GetValue<string>());
            Assert.Null(AttestedIdentityExtension.FromCertificate(leaf));
            Assert.Null(leaf.Extensions[AttestedIdentityExtension.Oid]);
            Assert.False(leaf.Extensions.OfType<X509BasicConstraintsExtension>().Single().CertificateAuthority);
        }

        // Roles have no parameter that adds extensions or makes CAs: unknown parameters are 400s.
        foreach (var field in new[] { "ext_key_usage_oids", "policy_identifiers", "basic_constraints_valid_for_non_ca", "is_ca", "extensions" })
        {
            var body = new Dictionary<string, object> { ["allowed_domains"] = "fn.morphisms.local", [field] = "2.25.1" };
            Assert.Contains($"'{field}'", (await c.PostAsync("pki/roles/wide", body)).Expect(400).Errors.Single(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_role_leaf_naming_the_kms_does_not_pass_a_kms_pin_at_the_pki_root_or_its_intermediates()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;

        // What anyone with pki/roles and pki/issue rights can get: a server certificate for the KMS's host name.
        (await c.PostAsync("pki/roles/x", new { allowed_domains = "kms.example", allow_bare_domains = true })).Expect(204);
        var issued = (await c.PostAsync("pki/issue/x", new { common_name = "kms.example" })).Expect(200).Data;
        using var leaf = X509Certificate2.CreateFromPem(issued["certificate"]!.GetValue<string>());
        var caChain = PkiAssert.Certificates(issued["ca_chain"]!.AsArray().Select(n => n!.GetValue<string>()));
        var root = caChain[^1];
        Assert.Equal("Morphisms KMS Root CA", root.GetNameInfo(X509NameType.SimpleName, false));

        // The root (root_ca_sha256) and the KMS-made intermediates carry the marker, rotated ones too.
        var rotated = (await c.PostAsync("pki/intermediate/rotate", new { })).Expect(200).Data;
        using var next = X509Certificate2.CreateFromPem(rotated["certificate"]!.GetValue<string>());
        Assert.All(caChain.Append(next), ca => Assert.False(Assert.Single(ca.Extensions, e => e.Oid!.Value == KmsPkiCaMarker.Oid).Critical));
        Assert.False(KmsPkiCaMarker.IsOn(leaf));

        // The attacker's server presents the whole chain; it validates, names the host, and is still refused.
        using var presented = new X509Chain();
        presented.ChainPolicy.ExtraStore.AddRange(caChain.ToArray());
        foreach (var pinned in caChain)
        {
            var pin = new KmsPin(SHA256.HashData(pinned.RawData), kms.Time);
            Assert.False(pin.Check(leaf, presented, SslPolicyErrors.RemoteCertificateChainErrors, out var reason));
            Assert.Contains("the pinned certificate is the KMS's PKI root CA or an intermediate of it", reason, StringComparison.Ordinal);
            Assert.Contains("never root_ca_sha256", reason, StringComparison.Ordinal);
        }

        // An operator's own CA (a separate pki mount) is unmarked, and a KMS certificate from it passes a pin at its root.
        (await c.PostAsync("sys/mounts/ca", new { type = "pki" })).Expect(204);
        using var operatorRoot = X509Certificate2.CreateFromPem((await c.PostAsync("ca/root/generate/internal", new { common_name = "Operator Root" })).Expect(200).Data["certificate"]!.GetValue<string>());
        (await c.PostAsync("ca/roles/kms", new { allowed_domains = "kms.example", allow_bare_domains = true })).Expect(204);
        var own = (await c.PostAsync("ca/issue/kms", new { common_name = "kms.example" })).Expect(200).Data;
        using var ownLeaf = X509Certificate2.CreateFromPem(own["certificate"]!.GetValue<string>());
        Assert.False(KmsPkiCaMarker.IsOn(operatorRoot));
        using var ownChain = new X509Chain();
        ownChain.ChainPolicy.ExtraStore.Add(operatorRoot);
        Assert.True(new KmsPin(SHA256.HashData(operatorRoot.RawData), kms.Time).Check(ownLeaf, ownChain, SslPolicyErrors.RemoteCertificateChainErrors, out var accepted), accepted);
        using var ownIntermediate = X509Certificate2.CreateFromPem((await c.PostAsync("ca/intermediate/rotate", new { })).Expect(200).Data["certificate"]!.GetValue<string>());
        Assert.False(KmsPkiCaMarker.IsOn(ownIntermediate));
    }

    [Fact]
    public async Task Mounts_created_through_the_api_cannot_be_rooted_in_the_kms_root()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        foreach (var value in new[] { "true", "1", "false" })
        {
            var error = (await c.PostAsync("sys/mounts/pki2", new { type = "pki", options = new Dictionary<string, string> { ["kms_root"] = value } })).Expect(400).Errors.Single();
            Assert.Contains("'kms_root'", error, StringComparison.Ordinal);
        }

        Assert.Null((await c.GetAsync("sys/mounts")).Expect(200).Data["pki2/"]);

        // An ordinary pki mount is still fine, and is rooted in its own root, never the KMS's.
        (await c.PostAsync("sys/mounts/pki2", new { type = "pki" })).Expect(204);
        Assert.Contains("no root issuer", (await c.PostAsync("pki2/intermediate/rotate")).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("no issuer", (await c.GetAsync("pki2/ca_chain")).Expect(400).Errors.Single(), StringComparison.Ordinal);

        // The mount init made is still the KMS-rooted one.
        Assert.Equal("true", (await c.GetAsync("sys/mounts")).Expect(200).Data["pki/"]!["options"]!["kms_root"]!.GetValue<string>());
    }
}
