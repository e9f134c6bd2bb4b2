using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Verify;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Tests.Pki;

/// <summary>The PKI engine over HTTP: CA set-up, roles, issue/sign, revocation and CRLs.</summary>
public sealed class PkiApiTests
{
    private static readonly DateTimeOffset At = SimulatedTees.Epoch.AddMinutes(1);

    [Fact]
    public async Task Root_and_intermediate_set_up_on_separate_mounts_issue_chains_that_x509chain_and_openssl_accept()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("sys/mounts/root-ca", new { type = "pki" })).Expect(204);
        (await c.PostAsync("sys/mounts/int-ca", new { type = "pki" })).Expect(204);

        var root = (await c.PostAsync("root-ca/root/generate/internal", new { common_name = "Test Root", ttl = "87600h" })).Expect(200).Data;
        Assert.Null(root["private_key"]);
        var rootPem = root["certificate"]!.GetValue<string>();

        var csr = (await c.PostAsync("int-ca/intermediate/generate/internal", new { common_name = "Test Intermediate" })).Expect(200).Data["csr"]!.GetValue<string>();
        var signed = (await c.PostAsync("root-ca/root/sign-intermediate", new { csr, ttl = "43800h" })).Expect(200).Data;
        var intermediatePem = signed["certificate"]!.GetValue<string>();
        (await c.PostAsync("int-ca/intermediate/set-signed", new { certificate = intermediatePem + rootPem })).Expect(200);

        (await c.PostAsync("int-ca/roles/web", new { allowed_domains = "example.com", allow_subdomains = true, max_ttl = "720h", key_type = "ec", key_bits = 384 })).Expect(204);
        var issued = (await c.PostAsync("int-ca/issue/web", new { common_name = "api.example.com", alt_names = "www.example.com", ttl = "24h" })).Expect(200).Data;
        var leafPem = issued["certificate"]!.GetValue<string>();
        Assert.StartsWith("-----BEGIN EC PRIVATE KEY-----", issued["private_key"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("ec", issued["private_key_type"]!.GetValue<string>());

        using var leaf = X509Certificate2.CreateFromPem(leafPem);
        using var rootCert = X509Certificate2.CreateFromPem(rootPem);
        var chain = PkiAssert.Certificates(issued["ca_chain"]!.AsArray().Select(n => n!.GetValue<string>()));
        PkiAssert.Chains(leaf, rootCert, chain, At);
        PkiAssert.OpensslVerifies(leafPem, rootPem, [intermediatePem], At);
        Assert.Equal(TimeSpan.FromHours(24), leaf.NotAfter - leaf.NotBefore - TimeSpan.FromSeconds(30));
        var san = leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames().ToList();
        Assert.Equal(["api.example.com", "www.example.com"], san);
        Assert.Equal(16, leaf.GetSerialNumber().Length);

        // The private key is returned once and never stored: the stored record has only the certificate.
        var serial = issued["serial_number"]!.GetValue<string>();
        var stored = (await c.GetAsync("int-ca/cert/" + serial)).Expect(200).Data;
        Assert.Equal(leafPem, stored["certificate"]!.GetValue<string>());
        Assert.Null(stored["private_key"]);
        Assert.Contains(serial, (await c.ListAsync("int-ca/certs")).Expect(200).Data["keys"]!.AsArray().Select(k => k!.GetValue<string>()));

        // sign/: the CSR's key is kept, and the chain validates too.
        using var key = RSA.Create(2048);
        (await c.PostAsync("int-ca/roles/rsa", new { allowed_domains = "example.com", allow_bare_domains = true, key_type = "rsa" })).Expect(204);
        var request = new CertificateRequest("CN=example.com", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1).CreateSigningRequestPem();
        var signedLeaf = (await c.PostAsync("int-ca/sign/rsa", new { csr = request })).Expect(200).Data["certificate"]!.GetValue<string>();
        using var signedCert = X509Certificate2.CreateFromPem(signedLeaf);
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), signedCert.PublicKey.ExportSubjectPublicKeyInfo());
        PkiAssert.OpensslVerifies(signedLeaf, rootPem, [intermediatePem], At);
    }

    [Fact]
    public async Task Revoked_serials_are_on_the_crl_for_the_parser_and_for_openssl()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true })).Expect(204);
        var first = (await c.PostAsync("pki/issue/svc", new { common_name = "a.svc.local" })).Expect(200).Data;
        var second = (await c.PostAsync("pki/issue/svc", new { common_name = "b.svc.local" })).Expect(200).Data;
        var serial = first["serial_number"]!.GetValue<string>();
        var revoked = (await c.PostAsync("pki/revoke", new { serial_number = serial })).Expect(200).Data;
        Assert.True(revoked["revocation_time"]!.GetValue<long>() > 0);
        Assert.NotEqual(0, (await c.GetAsync("pki/cert/" + serial)).Expect(200).Data["revocation_time"]!.GetValue<long>());

        var crlPem = (await c.GetAsync("pki/crl/pem")).Expect(200).Raw;
        var crlJson = (await c.GetAsync("pki/crl")).Expect(200).Data["certificate"]!.GetValue<string>();
        Assert.Equal(1, CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(crlJson)).RevokedCount);
        var crl = CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(crlPem));
        using var firstCert = X509Certificate2.CreateFromPem(first["certificate"]!.GetValue<string>());
        using var secondCert = X509Certificate2.CreateFromPem(second["certificate"]!.GetValue<string>());
        using var issuer = X509Certificate2.CreateFromPem(first["issuing_ca"]!.GetValue<string>());
        Assert.True(crl.IsRevoked(firstCert));
        Assert.False(crl.IsRevoked(secondCert));
        Assert.True(crl.VerifySignature(issuer));
        Assert.Equal(1, crl.RevokedCount);

        var dir = Directory.CreateTempSubdirectory("kms-crl-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "crl.pem"), crlPem);
            File.WriteAllText(Path.Combine(dir, "issuer.pem"), issuer.ExportCertificatePem());
            var (code, text) = PkiAssert.Openssl(dir, "crl", "-in", "crl.pem", "-text", "-noout", "-CAfile", "issuer.pem");
            Assert.True(code == 0, text);
            Assert.Contains("verify OK", text, StringComparison.Ordinal);
            Assert.Contains("Serial Number: " + serial.Replace(":", "", StringComparison.Ordinal).ToUpperInvariant(), text, StringComparison.Ordinal);
            Assert.DoesNotContain(second["serial_number"]!.GetValue<string>().Replace(":", "", StringComparison.Ordinal).ToUpperInvariant(), text, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }

        // Revoking again is idempotent and keeps the original time.
        Assert.Equal(revoked["revocation_time"]!.GetValue<long>(), (await c.PostAsync("pki/revoke", new { serial_number = serial })).Expect(200).Data["revocation_time"]!.GetValue<long>());
    }

    /// <summary>
    /// As in Vault, CRLs and the issuer list need no token: clients fetch the CRL themselves to refuse a revoked function
    /// certificate (Morphisms.Client's FunctionCrlCache), and find a rotated-out issuer's CRL through the list.
    /// </summary>
    [Fact]
    public async Task Crls_and_the_issuer_list_are_served_without_a_token_and_nothing_else_is()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true })).Expect(204);
        var issued = (await c.PostAsync("pki/issue/svc", new { common_name = "a.svc.local" })).Expect(200).Data;
        (await c.PostAsync("pki/revoke", new { serial_number = issued["serial_number"]!.GetValue<string>() })).Expect(200);
        using var certificate = X509Certificate2.CreateFromPem(issued["certificate"]!.GetValue<string>());

        var pem = (await c.GetAsync("pki/crl/pem", token: "")).Expect(200).Raw;
        Assert.True(CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(pem)).IsRevoked(certificate));
        Assert.Contains("BEGIN X509 CRL", (await c.GetAsync("pki/crl", token: "")).Expect(200).Data["certificate"]!.GetValue<string>());
        Assert.Contains("BEGIN X509 CRL", (await c.GetAsync("pki/cert/crl", token: "")).Expect(200).Data["certificate"]!.GetValue<string>());
        var issuers = (await c.ListAsync("pki/issuers", token: "")).Expect(200).Data;
        var id = issuers["default"]!.GetValue<string>();
        Assert.Contains(id, issuers["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        var byIssuer = (await c.GetAsync($"pki/issuer/{id}/crl/pem", token: "")).Expect(200).Raw;
        Assert.True(CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(byIssuer)).IsRevoked(certificate));
        Assert.Contains("BEGIN X509 CRL", (await c.GetAsync($"pki/issuer/{id}/crl", token: "")).Expect(200).Data["crl"]!.GetValue<string>());

        // The rest of the mount still wants a token.
        (await c.GetAsync($"pki/issuer/{id}", token: "")).Expect(403);
        (await c.GetAsync("pki/roles/svc", token: "")).Expect(403);
        (await c.PostAsync("pki/revoke", new { serial_number = issued["serial_number"]!.GetValue<string>() }, token: "")).Expect(403);
    }

    [Fact]
    public async Task Revoked_certificates_leave_the_crl_one_crl_lifetime_after_they_expire()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true, max_ttl = "720h" })).Expect(204);
        async Task<X509Certificate2> IssueAndRevokeAsync(string name, string ttl)
        {
            var issued = (await c.PostAsync("pki/issue/svc", new { common_name = name, ttl })).Expect(200).Data;
            (await c.PostAsync("pki/revoke", new { serial_number = issued["serial_number"]!.GetValue<string>() })).Expect(200);
            return X509Certificate2.CreateFromPem(issued["certificate"]!.GetValue<string>());
        }

        async Task<CertificateRevocationList> CrlAsync() =>
            CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes((await c.GetAsync("pki/crl/pem")).Expect(200).Raw));

        int StoredCrlSize() => kms.Storage!.Snapshot().Single(e => e.Key.EndsWith("/crl/state", StringComparison.Ordinal)).Value.Length;

        using var shortLived = await IssueAndRevokeAsync("a.svc.local", "1h");
        using var longLived = await IssueAndRevokeAsync("b.svc.local", "240h");
        var twoEntries = StoredCrlSize();

        // Expired, but not yet by the CRL's own lifetime (72 h): still listed, as RFC 5280 wants after expiry.
        kms.Time.SetUtcNow(new DateTimeOffset(shortLived.NotAfter.ToUniversalTime()) + TimeSpan.FromHours(72) - TimeSpan.FromMinutes(1));
        var crl = await CrlAsync();
        Assert.True(crl.IsRevoked(shortLived));
        Assert.True(crl.IsRevoked(longLived));

        // Past that: off the CRL; the unexpired one stays.
        kms.Time.Advance(TimeSpan.FromMinutes(2));
        crl = await CrlAsync();
        Assert.False(crl.IsRevoked(shortLived));
        Assert.True(crl.IsRevoked(longLived));
        Assert.Equal(1, crl.RevokedCount);

        // The next revocation drops it from the stored list too, in the same write: two entries again, not three
        // (one entry is some 150 bytes of JSON).
        using var third = await IssueAndRevokeAsync("c.svc.local", "1h");
        Assert.Equal(2, (await CrlAsync()).RevokedCount);
        Assert.InRange(StoredCrlSize(), twoEntries - 40, twoEntries + 40);
    }

    [Fact]
    public async Task The_crl_number_grows_when_an_entry_ages_out_and_only_when_the_contents_change()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true, max_ttl = "720h" })).Expect(204);
        async Task<X509Certificate2> IssueAndRevokeAsync(string name, string ttl)
        {
            var issued = (await c.PostAsync("pki/issue/svc", new { common_name = name, ttl })).Expect(200).Data;
            (await c.PostAsync("pki/revoke", new { serial_number = issued["serial_number"]!.GetValue<string>() })).Expect(200);
            return X509Certificate2.CreateFromPem(issued["certificate"]!.GetValue<string>());
        }

        async Task<(System.Numerics.BigInteger Number, int Entries)> CrlAsync()
        {
            var pem = (await c.GetAsync("pki/crl/pem")).Expect(200).Raw;
            CertificateRevocationListBuilder.LoadPem(pem, out var number);
            return (number, CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(pem)).RevokedCount);
        }

        using var shortLived = await IssueAndRevokeAsync("a.svc.local", "1h");
        using var longLived = await IssueAndRevokeAsync("b.svc.local", "240h");
        var (first, firstEntries) = await CrlAsync();
        Assert.Equal(2, firstEntries);

        // Same contents, same number, however often it is rebuilt.
        kms.Time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal((first, 2), await CrlAsync());

        // The short-lived entry ages out with no revocation: fewer entries, so a larger number.
        kms.Time.SetUtcNow(new DateTimeOffset(shortLived.NotAfter.ToUniversalTime()) + PkiBackend.ExpiredRetention + TimeSpan.FromMinutes(1));
        var (aged, agedEntries) = await CrlAsync();
        Assert.Equal(1, agedEntries);
        Assert.True(aged > first, $"CRL number {aged} after an entry aged out, {first} before");
        Assert.Equal((aged, 1), await CrlAsync());

        // The next revocation drops the aged entry from the stored list; the number still only grows.
        using var third = await IssueAndRevokeAsync("c.svc.local", "1h");
        var (next, nextEntries) = await CrlAsync();
        Assert.Equal(2, nextEntries);
        Assert.True(next > aged, $"CRL number {next} after a revocation, {aged} before");
    }

    /// <summary>
    /// The CRL routes need no token, so a read must not cost a signature each: the signed CRL is reused until its
    /// contents change (a revocation shows on the very next read) or it is half its 72 h lifetime old.
    /// </summary>
    [Fact]
    public async Task Crl_reads_reuse_one_signed_crl_until_its_contents_change_or_half_its_lifetime_passes()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true, max_ttl = "720h" })).Expect(204);
        var first = (await c.PostAsync("pki/issue/svc", new { common_name = "a.svc.local", ttl = "240h" })).Expect(200).Data;
        var second = (await c.PostAsync("pki/issue/svc", new { common_name = "b.svc.local", ttl = "240h" })).Expect(200).Data;
        (await c.PostAsync("pki/revoke", new { serial_number = first["serial_number"]!.GetValue<string>() })).Expect(200);
        using var secondCert = X509Certificate2.CreateFromPem(second["certificate"]!.GetValue<string>());
        var id = first["issuer_id"]!.GetValue<string>();

        async Task<string> PemAsync() => (await c.GetAsync("pki/crl/pem", token: "")).Expect(200).Raw;
        static System.Numerics.BigInteger Number(string pem)
        {
            CertificateRevocationListBuilder.LoadPem(pem, out var number);
            return number;
        }

        // The same bytes (an ECDSA signature is randomised, and thisUpdate would move) from every CRL route, minutes apart.
        var cached = await PemAsync();
        kms.Time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(cached, await PemAsync());
        Assert.Equal(cached, (await c.GetAsync("pki/crl", token: "")).Expect(200).Data["certificate"]!.GetValue<string>());
        Assert.Equal(cached, (await c.GetAsync("pki/cert/crl", token: "")).Expect(200).Data["certificate"]!.GetValue<string>());
        Assert.Equal(cached, (await c.GetAsync($"pki/issuer/{id}/crl/pem", token: "")).Expect(200).Raw);
        Assert.Equal(cached, (await c.GetAsync("pki/issuer/default/crl", token: "")).Expect(200).Data["crl"]!.GetValue<string>());

        // A revocation is on the very next read, under a larger number.
        (await c.PostAsync("pki/revoke", new { serial_number = second["serial_number"]!.GetValue<string>() })).Expect(200);
        var revoked = await PemAsync();
        Assert.True(CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(revoked)).IsRevoked(secondCert));
        Assert.True(Number(revoked) > Number(cached));
        Assert.Equal(revoked, await PemAsync());

        // Half the lifetime on, a fresh signature: same contents and number, a later thisUpdate.
        kms.Time.Advance(TimeSpan.FromHours(36));
        var renewed = await PemAsync();
        Assert.NotEqual(revoked, renewed);
        Assert.Equal(Number(revoked), Number(renewed));
        var before = CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(revoked));
        var after = CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(renewed));
        Assert.Equal(TimeSpan.FromHours(36), after.ThisUpdate - before.ThisUpdate);
        Assert.Equal(2, after.RevokedCount);
    }

    /// <summary>
    /// The cache is checked against the stored revocation state on every read, so a revocation written by another node
    /// (an HA active node before a failover, storage changed underneath this one) is served at once, not the old CRL.
    /// </summary>
    [Fact]
    public async Task A_crl_read_serves_a_revocation_another_node_wrote_to_the_shared_storage()
    {
        await using var a = await TestKms.StartUnsealedAsync();
        await using var b = await TestKms.StartAsync(physical: a.Storage);
        b.Keys.AddRange(a.Keys);
        await b.UnsealAsync();
        b.Client.Token = a.RootToken;
        (await a.Client.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true })).Expect(204);
        var issued = (await a.Client.PostAsync("pki/issue/svc", new { common_name = "a.svc.local" })).Expect(200).Data;
        using var certificate = X509Certificate2.CreateFromPem(issued["certificate"]!.GetValue<string>());

        async Task<CertificateRevocationList> CrlAsync(TestKms node) =>
            CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes((await node.Client.GetAsync("pki/crl/pem", token: "")).Expect(200).Raw));

        Assert.False((await CrlAsync(a)).IsRevoked(certificate));
        (await b.Client.PostAsync("pki/revoke", new { serial_number = issued["serial_number"]!.GetValue<string>() })).Expect(200);
        Assert.True((await CrlAsync(a)).IsRevoked(certificate));
    }

    /// <summary>
    /// The CRL routes need no token, so on a mount with no CA yet they must not make one (the KMS-rooted <c>pki/</c>
    /// creates its first intermediate on demand, a key and a storage write): they answer a 400 as Vault does and leave
    /// storage as it was. Issuance still creates the intermediate, and its CRL is served from then on.
    /// </summary>
    [Fact]
    public async Task An_anonymous_crl_read_on_a_mount_without_an_issuer_is_a_400_and_writes_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("sys/mounts/own-ca", new { type = "pki" })).Expect(204);
        var stored = kms.Storage!.Snapshot();
        foreach (var mount in new[] { "pki", "own-ca" })
        {
            foreach (var path in new[] { "crl", "cert/crl", "crl/pem", "issuer/default/crl", "issuer/default/crl/pem" })
            {
                var answer = (await c.GetAsync($"{mount}/{path}", token: "")).Expect(400);
                Assert.Contains("no default issuer", Assert.Single(answer.Errors), StringComparison.Ordinal);
            }
        }

        var now = kms.Storage.Snapshot();
        Assert.Equal(stored.Keys.Order(StringComparer.Ordinal), now.Keys.Order(StringComparer.Ordinal));
        Assert.All(stored, e => Assert.Equal(e.Value, now[e.Key]));
        Assert.Empty((await c.ListAsync("pki/issuers", token: "")).Expect(200).Data["keys"]!.AsArray());

        // Issuing (as attest-login does through the same path) still makes the first intermediate, whose CRL is then served.
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true })).Expect(204);
        var issuer = (await c.PostAsync("pki/issue/svc", new { common_name = "a.svc.local" })).Expect(200).Data["issuing_ca"]!.GetValue<string>();
        using var ca = X509Certificate2.CreateFromPem(issuer);
        var crl = (await c.GetAsync("pki/crl/pem", token: "")).Expect(200).Raw;
        Assert.True(CertificateRevocationList.Parse(System.Text.Encoding.ASCII.GetBytes(crl)).VerifySignature(ca));
    }

    [Fact]
    public async Task A_ttl_over_the_roles_max_ttl_is_capped_with_vaults_warning_not_refused()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/web", new { allowed_domains = "example.com", allow_subdomains = true, max_ttl = "1h" })).Expect(204);

        // cert-manager asks for 90 days unless told otherwise: Vault issues max_ttl and says so.
        var capped = (await c.PostAsync("pki/issue/web", new { common_name = "a.example.com", ttl = "2160h" })).Expect(200);
        Assert.Equal("TTL \"2160h0m0s\" is longer than permitted maxTTL \"1h0m0s\", so maxTTL is being used", capped.Body!["warnings"]!.AsArray().Single()!.GetValue<string>());
        using (var leaf = X509Certificate2.CreateFromPem(capped.Data["certificate"]!.GetValue<string>()))
        {
            Assert.InRange(leaf.NotAfter - leaf.NotBefore, TimeSpan.FromMinutes(59), TimeSpan.FromMinutes(61));
        }

        // Within max_ttl: no warning.
        Assert.Null((await c.PostAsync("pki/issue/web", new { common_name = "b.example.com", ttl = "30m" })).Expect(200).Body!["warnings"]);
    }

    [Fact]
    public async Task Bad_input_is_a_400_naming_the_field_and_writes_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var roleCases = new (object Body, string Named)[]
        {
            (new { allowed_domains = "example.com", allowed_domain = "typo.com" }, "'allowed_domain'"),
            (new { allowed_domains = "exa mple.com" }, "'allowed_domains'"),
            (new { allowed_domains = "example.com", key_type = "dsa" }, "'key_type'"),
            (new { allowed_domains = "example.com", key_bits = 1024 }, "'key_bits'"),
            (new { allowed_domains = "example.com", key_type = "rsa", key_bits = 256 }, "'key_bits'"),
            (new { allowed_domains = "example.com", ttl = "48h", max_ttl = "24h" }, "'ttl'"),
            (new { allowed_domains = "example.com", ttl = "soon" }, "'ttl'"),
            (new { allowed_domains = "example.com", allow_subdomains = "maybe" }, "'allow_subdomains'"),
            (new { allowed_domains = "example.com", server_flag = false, client_flag = false }, "'server_flag'"),
        };
        foreach (var (body, named) in roleCases)
        {
            Assert.Contains(named, (await c.PostAsync("pki/roles/bad", body)).Expect(400).Errors.Single(), StringComparison.Ordinal);
        }

        (await c.ListAsync("pki/roles")).Expect(404);
        (await c.GetAsync("pki/roles/bad")).Expect(404);

        (await c.PostAsync("pki/roles/web", new { allowed_domains = "example.com", allow_subdomains = true, max_ttl = "1h" })).Expect(204);
        var issueCases = new (object Body, string Named)[]
        {
            (new { }, "'common_name'"),
            (new { common_name = "evil.org" }, "'common_name'"),
            (new { common_name = "example.com" }, "'common_name'"),
            (new { common_name = "a.example.com", alt_names = "b.example.com,evil.org" }, "'alt_names'"),
            (new { common_name = "a.example.com", ip_sans = "10.0.0.1" }, "'ip_sans'"),
            (new { common_name = "a.example.com", ip_sans = "not-an-ip" }, "'ip_sans'"),
            (new { common_name = "a.example.com", format = "der" }, "'format'"),
            (new { common_name = "a.example.com", colour = "blue" }, "'colour'"),
        };
        foreach (var (body, named) in issueCases)
        {
            Assert.Contains(named, (await c.PostAsync("pki/issue/web", body)).Expect(400).Errors.Single(), StringComparison.Ordinal);
        }

        (await c.ListAsync("pki/certs")).Expect(404);

        Assert.Contains("'csr'", (await c.PostAsync("pki/sign/web", new { csr = "garbage" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'csr'", (await c.PostAsync("pki/sign/web", new { csr = TamperedCsr() })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'serial_number'", (await c.PostAsync("pki/revoke", new { serial_number = "zz" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'serial_number'", (await c.PostAsync("pki/revoke", new { serial_number = "01:02" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("unknown role", (await c.PostAsync("pki/issue/nope", new { common_name = "a.example.com" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("KMS root", (await c.PostAsync("pki/root/generate/internal", new { common_name = "x" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'domain'", (await c.PostAsync("pki/config/functions", new { domain = "not a domain" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        (await c.PostAsync("sys/mounts/empty-ca", new { type = "pki" })).Expect(204);
        Assert.Contains("'certificate'", (await c.PostAsync("empty-ca/intermediate/set-signed", new { certificate = "nope" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'key_bits'", (await c.PostAsync("empty-ca/intermediate/generate/internal", new { common_name = "x", key_bits = 521 })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("no issuer", (await c.GetAsync("empty-ca/ca/pem")).Expect(400).Errors.Single(), StringComparison.Ordinal);
        (await c.ListAsync("pki/certs")).Expect(404);
    }

    [Fact]
    public async Task Names_a_role_without_enforce_hostnames_passes_but_no_certificate_can_carry_are_a_400_naming_the_field_and_name()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/loose", new { allowed_domains = "example.com", allow_subdomains = true, enforce_hostnames = false })).Expect(204);
        var longLabel = new string('a', 64);

        // An empty label and a label over 63 characters pass the role's suffix check but cannot go into a SAN.
        var error = (await c.PostAsync("pki/issue/loose", new { common_name = "a..example.com" })).Expect(400).Errors.Single();
        Assert.Contains("'common_name'", error, StringComparison.Ordinal);
        Assert.Contains("a..example.com", error, StringComparison.Ordinal);
        error = (await c.PostAsync("pki/issue/loose", new { common_name = "a.example.com", alt_names = longLabel + ".example.com" })).Expect(400).Errors.Single();
        Assert.Contains("'alt_names'", error, StringComparison.Ordinal);
        Assert.Contains(longLabel, error, StringComparison.Ordinal);
        Assert.Contains("'common_name'", (await c.PostAsync("pki/sign/loose", new { csr = EcCsr(ECCurve.NamedCurves.nistP256), common_name = "a..example.com" })).Expect(400).Errors.Single(), StringComparison.Ordinal);

        // Nothing was issued; a name that is merely not a strict host name still is.
        (await c.ListAsync("pki/certs")).Expect(404);
        (await c.PostAsync("pki/issue/loose", new { common_name = "under_score.example.com" })).Expect(200);
    }

    [Fact]
    public async Task Sign_refuses_csr_keys_smaller_than_or_on_another_curve_than_the_role_names()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/rsa", new { allowed_domains = "example.com", allow_subdomains = true, key_type = "rsa", key_bits = 3072 })).Expect(204);
        (await c.PostAsync("pki/roles/ec", new { allowed_domains = "example.com", allow_subdomains = true, key_type = "ec", key_bits = 256 })).Expect(204);

        // RSA: never below Vault's 2048, and never below the role's key_bits; more is fine.
        Assert.Contains("minimum is 2048", await SignError(c, "pki/sign/rsa", RsaCsr(512)), StringComparison.Ordinal);
        Assert.Contains("role requires at least 3072", await SignError(c, "pki/sign/rsa", RsaCsr(2048)), StringComparison.Ordinal);
        (await c.PostAsync("pki/sign/rsa", new { csr = RsaCsr(3072) })).Expect(200);

        // EC: exactly the NIST curve key_bits names; secp256k1 has 256 bits but is not P-256.
        Assert.Contains("not on a NIST curve", await SignError(c, "pki/sign/ec", EcCsr(ECCurve.CreateFromFriendlyName("secp256k1"))), StringComparison.Ordinal);
        Assert.Contains("requires an EC key on P-256", await SignError(c, "pki/sign/ec", EcCsr(ECCurve.NamedCurves.nistP384)), StringComparison.Ordinal);
        (await c.PostAsync("pki/sign/ec", new { csr = EcCsr(ECCurve.NamedCurves.nistP256) })).Expect(200);

        // root/sign-intermediate has no role (Vault's key_type "any"): the floor still holds.
        (await c.PostAsync("sys/mounts/ca", new { type = "pki" })).Expect(204);
        (await c.PostAsync("ca/root/generate/internal", new { common_name = "Test Root" })).Expect(200);
        Assert.Contains("minimum is 2048", await SignError(c, "ca/root/sign-intermediate", RsaCsr(1024)), StringComparison.Ordinal);
        Assert.Contains("not on a NIST curve", await SignError(c, "ca/root/sign-intermediate", EcCsr(ECCurve.CreateFromFriendlyName("secp256k1"))), StringComparison.Ordinal);
        (await c.PostAsync("ca/root/sign-intermediate", new { csr = EcCsr(ECCurve.NamedCurves.nistP384) })).Expect(200);

        // Only the two accepted leaves were issued on pki/.
        Assert.Equal(2, (await c.ListAsync("pki/certs")).Expect(200).Data["keys"]!.AsArray().Count);
    }

    /// <summary>
    /// As in Vault, <c>issue</c>'s <c>private_key</c> is the key in its own form unless <c>private_key_format</c> is
    /// <c>pkcs8</c>: omitted, <c>""</c>, <c>der</c> and <c>pem</c> give SEC1 (<c>EC PRIVATE KEY</c>) or PKCS#1
    /// (<c>RSA PRIVATE KEY</c>), PEM-encoded since <c>format</c> is pem; <c>pkcs8</c> gives <c>PRIVATE KEY</c>. Each
    /// parses as what its label says and is the certificate's key.
    /// </summary>
    [Theory]
    [InlineData("ec", 256)]
    [InlineData("ec", 384)]
    [InlineData("rsa", 2048)]
    public async Task Issue_returns_the_private_key_in_the_form_private_key_format_names(string keyType, int keyBits)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/web", new { allowed_domains = "example.com", allow_subdomains = true, key_type = keyType, key_bits = keyBits })).Expect(204);
        var native = keyType == "ec" ? "EC PRIVATE KEY" : "RSA PRIVATE KEY";
        foreach (var (format, label) in new (string? Format, string Label)[] { (null, native), ("", native), ("der", native), ("pem", native), ("pkcs8", "PRIVATE KEY") })
        {
            var body = new Dictionary<string, string> { ["common_name"] = "a.example.com" };
            if (format is not null)
            {
                body["private_key_format"] = format;
            }

            var issued = (await c.PostAsync("pki/issue/web", body)).Expect(200).Data;
            Assert.Equal(keyType, issued["private_key_type"]!.GetValue<string>());
            var pem = issued["private_key"]!.GetValue<string>();
            var fields = PemEncoding.Find(pem);
            Assert.Equal(label, pem[fields.Label]);
            var der = Convert.FromBase64String(pem[fields.Base64Data]);
            using var certificate = X509Certificate2.CreateFromPem(issued["certificate"]!.GetValue<string>());
            using AsymmetricAlgorithm key = keyType == "ec" ? ECDsa.Create() : RSA.Create();

            // The DER is the structure the label names (each importer refuses the others), and ImportFromPem, which
            // every .NET consumer uses, reads it too.
            switch (key, label)
            {
                case (_, "PRIVATE KEY"):
                    key.ImportPkcs8PrivateKey(der, out _);
                    break;
                case (ECDsa ec, _):
                    ec.ImportECPrivateKey(der, out _);
                    Assert.Equal(keyBits, ec.KeySize);
                    break;
                case (RSA rsa, _):
                    rsa.ImportRSAPrivateKey(der, out _);
                    Assert.Equal(keyBits, rsa.KeySize);
                    break;
            }

            Assert.Equal(certificate.PublicKey.ExportSubjectPublicKeyInfo(), key.ExportSubjectPublicKeyInfo());
            using AsymmetricAlgorithm fromPem = keyType == "ec" ? ECDsa.Create() : RSA.Create();
            fromPem.ImportFromPem(pem);
            Assert.Equal(certificate.PublicKey.ExportSubjectPublicKeyInfo(), fromPem.ExportSubjectPublicKeyInfo());
        }
    }

    /// <summary>
    /// cert-manager's Vault issuer posts every field to sign/ROLE as a string, unset ones empty: common_name and
    /// alt_names from the CSR, ip_sans and uri_sans (usually ""), ttl as Go prints it, exclude_cn_from_sans "true".
    /// Vault's defaults of the other sign/issue fields are accepted too; values the KMS cannot honour are 400s naming
    /// the field, and nothing is issued for them.
    /// </summary>
    [Fact]
    public async Task Sign_and_issue_accept_what_cert_manager_and_vault_clients_send_and_name_what_they_cannot_honour()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("pki/roles/web", new { allowed_domains = "example.com", allow_subdomains = true, allow_ip_sans = true })).Expect(204);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("a.example.com");
        san.AddDnsName("b.example.com");
        var request = new CertificateRequest("CN=a.example.com", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(san.Build());
        var csr = request.CreateSigningRequestPem();

        var certManager = new Dictionary<string, string>
        {
            ["common_name"] = "a.example.com", ["alt_names"] = "a.example.com,b.example.com", ["ip_sans"] = "", ["uri_sans"] = "",
            ["ttl"] = "24h0m0s", ["csr"] = csr, ["exclude_cn_from_sans"] = "true",
        };
        var signed = (await c.PostAsync("pki/sign/web", certManager)).Expect(200).Data;
        using (var leaf = X509Certificate2.CreateFromPem(signed["certificate"]!.GetValue<string>()))
        {
            Assert.Equal(["a.example.com", "b.example.com"], leaf.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single().EnumerateDnsNames());
            Assert.Equal(TimeSpan.FromHours(24), leaf.NotAfter - leaf.NotBefore - TimeSpan.FromSeconds(30));
        }

        // An empty common_name takes the CSR's, as Vault's use_csr_common_name (on by default for sign) does.
        using (var leaf = X509Certificate2.CreateFromPem((await c.PostAsync("pki/sign/web", new { csr, common_name = "" })).Expect(200).Data["certificate"]!.GetValue<string>()))
        {
            Assert.Equal("a.example.com", leaf.GetNameInfo(X509NameType.SimpleName, false));
        }

        var defaults = new
        {
            common_name = "c.example.com", alt_names = "", ip_sans = "", uri_sans = "", other_sans = "", ttl = "", format = "pem",
            private_key_format = "der", exclude_cn_from_sans = false, not_after = "", remove_roots_from_chain = false,
        };
        (await c.PostAsync("pki/issue/web", defaults)).Expect(200);
        (await c.PostAsync("pki/issue/web", new { common_name = "c.example.com", format = "", private_key_format = "" })).Expect(200);
        var issued = (await c.ListAsync("pki/certs")).Expect(200).Data["keys"]!.AsArray().Count;

        var refused = new (object Body, string Named)[]
        {
            (new { csr, uri_sans = "spiffe://example.com/app" }, "'uri_sans'"),
            (new { csr, other_sans = "1.3.6.1.4.1.311.20.2.3;UTF8:devops@example.com" }, "'other_sans'"),
            (new { csr, not_after = "2030-01-01T00:00:00Z" }, "'not_after'"),
            (new { csr, remove_roots_from_chain = true }, "'remove_roots_from_chain'"),
            (new { csr, format = "pem_bundle" }, "'format'"),
        };
        foreach (var (body, named) in refused)
        {
            var error = (await c.PostAsync("pki/sign/web", body)).Expect(400).Errors.Single();
            Assert.Contains(named, error, StringComparison.Ordinal);
            Assert.Contains("not supported", error, StringComparison.Ordinal);
        }

        Assert.Contains("'uri_sans'", (await c.PostAsync("pki/issue/web", new { common_name = "c.example.com", uri_sans = "spiffe://example.com/app" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Equal(issued, (await c.ListAsync("pki/certs")).Expect(200).Data["keys"]!.AsArray().Count);
    }

    private static async Task<string> SignError(VaultHttp c, string path, string csr)
    {
        var errors = (await c.PostAsync(path, new { csr })).Expect(400).Errors;
        return Assert.Single(errors);
    }

    private static string RsaCsr(int bits)
    {
        using var key = RSA.Create(bits);
        return new CertificateRequest("CN=a.example.com", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1).CreateSigningRequestPem();
    }

    private static string EcCsr(ECCurve curve)
    {
        using var key = ECDsa.Create(curve);
        return new CertificateRequest("CN=a.example.com", key, HashAlgorithmName.SHA256).CreateSigningRequestPem();
    }

    [Fact]
    public async Task The_default_mount_is_rooted_in_the_kms_root_ca()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        var mounts = (await c.GetAsync("sys/mounts")).Expect(200).Data;
        Assert.Equal("pki", mounts["pki/"]!["type"]!.GetValue<string>());
        Assert.Equal("transit", mounts["transit/"]!["type"]!.GetValue<string>());
        var chain = PkiAssert.Certificates([(await c.GetAsync("pki/ca_chain")).Expect(200).Raw]);
        Assert.Equal(2, chain.Count);
        Assert.Equal("Morphisms KMS Root CA", chain[1].GetNameInfo(X509NameType.SimpleName, false));
        Assert.Equal(chain[1].SubjectName.Name, chain[1].IssuerName.Name);
        Assert.Equal(chain[0].IssuerName.Name, chain[1].SubjectName.Name);
        Assert.Equal(PkiAssert.Certificates([(await c.GetAsync("pki/ca/pem")).Expect(200).Raw])[0].Thumbprint, chain[0].Thumbprint);
        Assert.Equal("fn.morphisms.local", (await c.GetAsync("pki/config/functions")).Expect(200).Data["domain"]!.GetValue<string>());

        // Only init roots a mount in the KMS root CA (KmsRootCaBoundaryTests).
        (await c.PostAsync("sys/mounts/pki2", new { type = "pki", options = new { kms_root = "true" } })).Expect(400);
    }

    private static string TamperedCsr()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var der = new CertificateRequest("CN=a.example.com", key, HashAlgorithmName.SHA256).CreateSigningRequest();
        der[^5] ^= 0x01;
        return new string(PemEncoding.Write("CERTIFICATE REQUEST", der));
    }

}
