using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Identity;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Pki;

/// <summary>Roles and issuance.</summary>
internal sealed partial class PkiBackend
{
    // Vault's floor for RSA keys, whatever the role says.
    private const int MinimumRsaBits = 2048;

    // Vault's issue/sign fields. cert-manager's Vault issuer sends uri_sans (usually "") with every signing, and Vault
    // clients send the others at their defaults; a value the KMS cannot honour is a 400 naming the field, never ignored.
    private static readonly string[] IssueFields =
    [
        "common_name", "alt_names", "ip_sans", "uri_sans", "other_sans", "ttl", "not_after", "format", "exclude_cn_from_sans",
        "private_key_format", "remove_roots_from_chain",
    ];

    private async Task<KmsResponse?> ListRoles(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var keys = await _storage.ListAsync("roles/", ct).ConfigureAwait(false);
        return keys.Count == 0 ? throw KmsException.NotFound() : KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(keys) });
    }

    private async Task<KmsResponse?> ReadRole(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var role = await LoadRoleAsync(match["name"], ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        return KmsResponse.WithData(role.ToJson());
    }

    private async Task<KmsResponse?> WriteRole(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var existing = await LoadRoleAsync(match["name"], ct).ConfigureAwait(false);
            var role = PkiRole.Parse(request.Fields, existing);
            await _storage.PutJsonAsync("roles/" + match["name"], role, ct).ConfigureAwait(false);
            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KmsResponse?> DeleteRole(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        await _storage.DeleteAsync("roles/" + match["name"], ct).ConfigureAwait(false);
        return null;
    }

    private Task<PkiRole?> LoadRoleAsync(string name, CancellationToken ct) => _storage.GetJsonAsync<PkiRole>("roles/" + name, ct);

    /// <summary><c>issue/ROLE</c>: the KMS makes the key pair and returns the private key once; it is never stored.</summary>
    private async Task<KmsResponse?> Issue(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var role = await LoadRoleAsync(match["name"], ct).ConfigureAwait(false) ?? throw KmsException.BadRequest($"unknown role '{match["name"]}'");
        var (subject, names, ips, ttl, ttlWarning) = ParseIssueFields(request.Fields, role);
        using var key = role.KeyType == "rsa" ? RSA.Create(role.KeyBits)
            : (AsymmetricAlgorithm)ECDsa.Create(role.KeyBits == 384 ? ECCurve.NamedCurves.nistP384 : ECCurve.NamedCurves.nistP256);
        var publicKey = new PublicKey(key);
        var (data, _) = await SignLeafAsync(new LeafRequest(publicKey, subject, names, ips, ttl, role.ServerFlag, role.ClientFlag, role.KeyType == "rsa"), ct).ConfigureAwait(false);
        // As in Vault, "pkcs8" is PKCS#8 and anything else ParseIssueFields let through ("", "der", "pem") the key's own
        // form, SEC1 for EC and PKCS#1 for RSA, PEM-encoded since the response's format is pem.
        data["private_key"] = request.Fields.String("private_key_format") == "pkcs8" ? key.ExportPkcs8PrivateKeyPem()
            : key is RSA rsa ? rsa.ExportRSAPrivateKeyPem() : ((ECDsa)key).ExportECPrivateKeyPem();
        data["private_key_type"] = role.KeyType;
        return WithWarning(KmsResponse.WithData(data), ttlWarning);
    }

    /// <summary><c>sign/ROLE</c>: signs a CSR whose signature verifies, keeping the CSR's key and the role's names.</summary>
    private async Task<KmsResponse?> Sign(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var role = await LoadRoleAsync(match["name"], ct).ConfigureAwait(false) ?? throw KmsException.BadRequest($"unknown role '{match["name"]}'");
        var csr = ParseCsr(request.Fields.RequiredString("csr"), "csr");
        var csrKeyType = csr.PublicKey.Oid.Value switch
        {
            PkiCertificates.EcPublicKeyOid => "ec",
            PkiCertificates.RsaPublicKeyOid => "rsa",
            _ => throw KmsException.BadRequest("invalid 'csr': its key is neither EC nor RSA"),
        };
        if (csrKeyType != role.KeyType)
        {
            throw KmsException.BadRequest($"invalid 'csr': the role requires a {role.KeyType} key");
        }

        CheckCsrKey(csr.PublicKey, role);

        var fields = request.Fields;
        // As Vault's use_csr_common_name (on by default for sign): a missing or empty common_name is the CSR's.
        if (!fields.HasValue("common_name") && csr.SubjectName.Name.Length > 0)
        {
            fields.Data["common_name"] = CommonNameOf(csr.SubjectName);
        }

        var (subject, names, ips, ttl, ttlWarning) = ParseIssueFields(fields, role, "csr");
        var (data, _) = await SignLeafAsync(new LeafRequest(csr.PublicKey, subject, names, ips, ttl, role.ServerFlag, role.ClientFlag, csrKeyType == "rsa"), ct).ConfigureAwait(false);
        return WithWarning(KmsResponse.WithData(data), ttlWarning);
    }

    private static KmsResponse WithWarning(KmsResponse response, string? warning)
    {
        if (warning is not null)
        {
            response.Warnings.Add(warning);
        }

        return response;
    }

    /// <summary>
    /// Refuses a CSR key other than one the role would make, as Vault's sign does: an RSA key needs at least the role's
    /// <c>key_bits</c> (and never fewer than 2048), an EC key must be on the NIST curve <c>key_bits</c> names. Without a
    /// role (<c>root/sign-intermediate</c>, Vault's <c>key_type</c> "any") only the floor holds: RSA of 2048 bits or more,
    /// or a NIST curve. Comparing the key family alone signed RSA-512 keys under 4096-bit roles and secp256k1 keys under ec ones.
    /// </summary>
    private static void CheckCsrKey(PublicKey key, PkiRole? role)
    {
        if (key.Oid.Value == PkiCertificates.RsaPublicKeyOid)
        {
            int bits;
            try
            {
                using var rsa = key.GetRSAPublicKey();
                bits = rsa?.KeySize ?? 0;
            }
            catch (CryptographicException)
            {
                throw KmsException.BadRequest("invalid 'csr': its RSA public key cannot be read");
            }

            if (bits < MinimumRsaBits)
            {
                throw KmsException.BadRequest($"invalid 'csr': its RSA key has {bits.ToString(CultureInfo.InvariantCulture)} bits; the minimum is {MinimumRsaBits.ToString(CultureInfo.InvariantCulture)}");
            }

            if (role is not null && bits < role.KeyBits)
            {
                throw KmsException.BadRequest($"invalid 'csr': its RSA key has {bits.ToString(CultureInfo.InvariantCulture)} bits; the role requires at least {role.KeyBits.ToString(CultureInfo.InvariantCulture)}");
            }

            return;
        }

        if (key.Oid.Value != PkiCertificates.EcPublicKeyOid)
        {
            throw KmsException.BadRequest("invalid 'csr': its key is neither EC nor RSA");
        }

        // Explicit curve parameters (no name) are refused like unknown curves.
        var curveBits = PkiCertificates.NamedCurveOid(key) switch
        {
            PkiCertificates.P224CurveOid => 224,
            PkiCertificates.P256CurveOid => 256,
            PkiCertificates.P384CurveOid => 384,
            PkiCertificates.P521CurveOid => 521,
            _ => throw KmsException.BadRequest("invalid 'csr': its EC key is not on a NIST curve (P-224, P-256, P-384 or P-521)"),
        };
        if (role is not null && curveBits != role.KeyBits)
        {
            throw KmsException.BadRequest($"invalid 'csr': the role requires an EC key on P-{role.KeyBits.ToString(CultureInfo.InvariantCulture)}; this one is on P-{curveBits.ToString(CultureInfo.InvariantCulture)}");
        }
    }

    /// <summary>
    /// Signs a function certificate at attest-login under the function's derived role: SANs
    /// <c>FUNCTION.DOMAIN</c> and <c>REVISION.FUNCTION.DOMAIN</c>, client and server use, the attested-identity
    /// extension, and the validity given (the token's max TTL, at most <see cref="KmsServerOptions.FunctionCertificateMaxTtl"/>).
    /// The certificate's record is added to <paramref name="writes"/>, for the login to commit with its token and
    /// retirement index.
    /// </summary>
    public async Task<(string Certificate, List<string> Chain, string Serial, DateTimeOffset NotAfter)> IssueFunctionCertificateAsync(
        FunctionLeaf leaf, WriteSet writes, CancellationToken ct)
    {
        var config = await LoadConfigAsync(ct).ConfigureAwait(false);
        var domain = config.FunctionDomain ?? DefaultFunctionDomain;
        var name = leaf.Function + "." + domain;
        var names = new List<string> { name, leaf.Revision.ToString(System.Globalization.CultureInfo.InvariantCulture) + "." + name };
        var subject = PkiCertificates.Subject(name, "Morphisms function");
        var (data, issuer) = await SignLeafAsync(
            new LeafRequest(leaf.PublicKey, subject, names, [], leaf.Validity, Server: true, Client: true, Rsa: false, leaf.Identity.ToExtension(), writes), ct).ConfigureAwait(false);
        return (data["certificate"]!.GetValue<string>(), ChainOf(issuer), data["serial_number"]!.GetValue<string>().Replace(":", "", StringComparison.Ordinal),
            DateTimeOffset.FromUnixTimeSeconds(data["expiration"]!.GetValue<long>()));
    }

    private static (X500DistinguishedName Subject, List<string> Names, List<IPAddress> Ips, TimeSpan Ttl, string? TtlWarning) ParseIssueFields(Fields f, PkiRole role, params string[] extra)
    {
        var commonName = f.RequiredString("common_name");
        var altNames = f.StringList("alt_names") ?? [];
        var ipTexts = f.StringList("ip_sans") ?? [];
        var ttl = role.Validity(f.DurationUnlessZero("ttl"), out var ttlWarning);
        var format = f.String("format") is { Length: > 0 } givenFormat ? givenFormat : "pem";
        var excludeCn = f.Bool("exclude_cn_from_sans") ?? false;
        var keyFormat = f.String("private_key_format") ?? "";
        var removeRoots = f.Bool("remove_roots_from_chain") ?? false;
        PkiRole.RejectUnknown(f, [.. IssueFields, .. extra]);
        if (format != "pem")
        {
            throw KmsException.BadRequest($"invalid 'format': \"{PkiRole.Printable(format)}\" is not supported; use \"pem\"");
        }

        // Vault's default is "der" (the key's own form, in the response's format); "pkcs8" asks for PKCS#8 (see Issue).
        if (keyFormat is not ("" or "der" or "pem" or "pkcs8"))
        {
            throw KmsException.BadRequest($"invalid 'private_key_format': \"{PkiRole.Printable(keyFormat)}\" is not supported; use \"der\", \"pem\" or \"pkcs8\"");
        }

        if (f.HasValue("uri_sans"))
        {
            throw KmsException.BadRequest("invalid 'uri_sans': URI SANs are not supported");
        }

        if (f.HasValue("other_sans"))
        {
            throw KmsException.BadRequest("invalid 'other_sans': other SANs are not supported");
        }

        if (f.HasValue("not_after"))
        {
            throw KmsException.BadRequest("invalid 'not_after': a fixed expiry is not supported; use 'ttl'");
        }

        if (removeRoots)
        {
            throw KmsException.BadRequest("invalid 'remove_roots_from_chain': removing the root from ca_chain is not supported");
        }

        role.CheckNames([commonName], "common_name");
        role.CheckNames(altNames, "alt_names");
        PkiCertificates.CheckDnsNames(excludeCn ? [] : [commonName.ToLowerInvariant()], "common_name");
        PkiCertificates.CheckDnsNames(altNames.Select(n => n.ToLowerInvariant()), "alt_names");
        var ips = new List<IPAddress>();
        foreach (var text in ipTexts)
        {
            ips.Add(IPAddress.TryParse(text, out var ip) ? ip : throw KmsException.BadRequest($"invalid 'ip_sans': \"{PkiRole.Printable(text)}\" is not an IP address"));
        }

        role.CheckIps(ips);
        var names = (excludeCn ? altNames : [commonName, .. altNames]).Select(n => n.ToLowerInvariant()).Distinct().ToList();
        if (names.Count + ips.Count > 100)
        {
            throw KmsException.BadRequest("invalid 'alt_names': at most 100 names");
        }

        return (PkiCertificates.Subject(commonName), names, ips, ttl, ttlWarning);
    }

    /// <summary>
    /// Signs a leaf with the current default issuer, then records it and pushes the issuer's last-leaf expiry
    /// (which keeps a retiring issuer in the served chain) in one transaction; or, when the request carries a
    /// <see cref="WriteSet"/>, adds the leaf's record to it and commits only the issuer's expiry, ahead of the leaf.
    /// </summary>
    private async Task<(JsonObject Data, IssuerRecord Issuer)> SignLeafAsync(LeafRequest leaf, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var (issuer, signer) = await IssuingIssuerAsync(now, ct).ConfigureAwait(false);
        var serial = PkiCertificates.NewSerial();
        string pem;
        DateTimeOffset notAfter;

        // The loaded key goes back to the pool as soon as it has signed, not after the commit: held across the fsync,
        // as many keys are out as logins wait on the disk, more than the pool keeps, and each extra one is a P-384
        // import, dearer than the signature.
        try
        {
            var request = new CertificateRequest(leaf.Subject, leaf.PublicKey, signer.Hash);
            PkiCertificates.AddLeafExtensions(request, signer.Certificate, leaf.Names, leaf.Ips, leaf.Server, leaf.Client, leaf.Rsa);
            if (leaf.Extra is not null)
            {
                request.CertificateExtensions.Add(leaf.Extra);
            }

            using var certificate = PkiCertificates.Sign(request, signer, now, leaf.Ttl, serial);
            pem = PkiCertificates.Pem(certificate);
            notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        }
        finally
        {
            _signers.Return(issuer, signer);
        }

        var certKey = "certs/" + PkiCertificates.SerialKey(serial);
        var certRecord = SecureStorageJson.ToJson(new CertRecord { Certificate = pem, IssuerId = issuer.Id });
        var ops = new List<(string, byte[]?)>();
        if (leaf.Writes is { } writes)
        {
            writes.Add(_storage, certKey, certRecord);
        }
        else
        {
            ops.Add((certKey, certRecord));
        }

        // The issuer's last-leaf expiry only needs to cover every leaf, so it moves in whole hours: most leaves are
        // already covered and commit alone, in parallel (sharing fsyncs), instead of queueing on the mount's write
        // lock for a read-modify-write of the issuer. A retiring issuer stays in the chain up to an hour longer.
        // `issuer` was read from storage for this signature, and the value only ever grows, so if it covers the leaf
        // the stored one still does; otherwise it is re-read under the lock below. Committing the expiry before the
        // leaf (the write-set case) is safe: it only ever claims more than the leaves need.
        var covers = LastLeafBucket(notAfter);
        if (issuer.LastLeafNotAfter is { } known && known >= notAfter)
        {
            if (ops.Count > 0)
            {
                await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
            }
        }
        else
        {
            await _writes.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (await LoadIssuerAsync(issuer.Id, ct).ConfigureAwait(false) is { } current && (current.LastLeafNotAfter is null || current.LastLeafNotAfter < notAfter))
                {
                    current.LastLeafNotAfter = covers;
                    ops.Add(("issuers/" + current.Id, SecureStorageJson.ToJson(current)));
                }

                if (ops.Count > 0)
                {
                    await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
                }
            }
            finally
            {
                _writes.Release();
            }
        }

        return (CertData(pem, issuer, PkiCertificates.FormatSerial(serial), notAfter), issuer);
    }

    /// <summary><paramref name="notAfter"/> rounded up to the next whole hour (UTC).</summary>
    internal static DateTimeOffset LastLeafBucket(DateTimeOffset notAfter)
    {
        var hour = TimeSpan.TicksPerHour;
        var ticks = notAfter.UtcTicks % hour == 0 ? notAfter.UtcTicks : (notAfter.UtcTicks / hour + 1) * hour;
        return new DateTimeOffset(ticks, TimeSpan.Zero);
    }

    /// <summary>The CN of a distinguished name, or empty.</summary>
    private static string CommonNameOf(X500DistinguishedName name) =>
        name.EnumerateRelativeDistinguishedNames().FirstOrDefault(r => !r.HasMultipleElements && r.GetSingleElementType().Value == "2.5.4.3")?.GetSingleElementValue() ?? "";
}

/// <summary>What a leaf certificate says and how it is recorded.</summary>
/// <param name="PublicKey">The subject's key.</param>
/// <param name="Subject">The subject name.</param>
/// <param name="Names">DNS SANs.</param>
/// <param name="Ips">IP SANs.</param>
/// <param name="Ttl">Validity from now (clipped to the issuer's).</param>
/// <param name="Server">Server-auth usage.</param>
/// <param name="Client">Client-auth usage.</param>
/// <param name="Rsa">Whether the key is RSA (key usages differ).</param>
/// <param name="Extra">One more extension, or null.</param>
/// <param name="Writes">Where the leaf's record goes for the caller to commit; null to commit it here.</param>
internal sealed record LeafRequest(
    PublicKey PublicKey, X500DistinguishedName Subject, List<string> Names, List<IPAddress> Ips, TimeSpan Ttl,
    bool Server, bool Client, bool Rsa, X509Extension? Extra = null, WriteSet? Writes = null);

/// <summary>A function certificate to issue at attest-login.</summary>
/// <param name="Function">The function's name.</param>
/// <param name="Revision">The revision that matched.</param>
/// <param name="PublicKey">The TEE-generated key from the verified CSR.</param>
/// <param name="Validity">How long it lives (the token's max TTL).</param>
/// <param name="Identity">The attested-identity extension.</param>
internal sealed record FunctionLeaf(string Function, int Revision, PublicKey PublicKey, TimeSpan Validity, AttestedIdentityExtension Identity);
