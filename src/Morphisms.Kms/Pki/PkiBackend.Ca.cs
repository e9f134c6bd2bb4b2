using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Attestation.Identity;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Pki;

/// <summary>CA set-up, issuer rotation and issuer reads.</summary>
internal sealed partial class PkiBackend
{
    private static readonly TimeSpan DefaultRootTtl = TimeSpan.FromDays(3650);

    /// <summary>
    /// Why a KMS-rooted mount refuses every route that would sign a caller's CSR as a CA, take in a CA certificate or
    /// hand out a CA key: clients accept any chain to the KMS root that carries the attested-identity extension, so a
    /// CA under it in a caller's hands could mint function certificates for any function and measurement.
    /// </summary>
    internal const string KmsRootRule = "the KMS root CA issues only the KMS's own intermediates and attested function certificates";

    private const string KmsRootRefusal =
        KmsRootRule + ": this mount is rooted in it, so it does not generate roots or intermediate keys, sign intermediates " +
        "or import CA certificates (intermediate/rotate makes a new intermediate here; mount a separate pki engine for a CA of your own)";

    /// <summary>Refuses <paramref name="route"/> on a KMS-rooted mount (before anything is parsed or generated).</summary>
    private void RefuseOnKmsRoot(string route)
    {
        if (_kmsRoot)
        {
            throw KmsException.BadRequest($"{route}: {KmsRootRefusal}");
        }
    }

    private async Task<KmsResponse?> GenerateRoot(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        RefuseOnKmsRoot("root/generate");
        var f = request.Fields;
        var commonName = f.RequiredString("common_name");
        var ttl = f.DurationUnlessZero("ttl") ?? DefaultRootTtl;
        var bits = CaKeyBits(f);
        PkiRole.RejectUnknown(f, ["common_name", "ttl", "key_type", "key_bits"]);
        using var key = PkiCertificates.NewCaKey(bits);
        var now = _time.GetUtcNow();
        var csr = new CertificateRequest(PkiCertificates.Subject(commonName), key, bits > 256 ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256);
        PkiCertificates.AddCaExtensions(csr, null, root: true);
        var serial = PkiCertificates.NewSerial();
        using var certificate = csr.Create(csr.SubjectName, X509SignatureGenerator.CreateForECDsa(key), now - PkiCertificates.Backdate, now + ttl, serial);
        var issuer = new IssuerRecord
        {
            Id = NewIssuerId(),
            Certificate = PkiCertificates.Pem(certificate),
            PrivateKey = key.ExportPkcs8PrivateKeyPem(),
            IsRoot = true,
            CreatedAt = now,
        };

        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var config = await LoadConfigAsync(ct).ConfigureAwait(false);
            config.Default ??= issuer.Id;
            issuer.Sequence = ++config.LastIssuerSequence;
            await _storage.TransactAsync(
            [
                ("issuers/" + issuer.Id, SecureStorageJson.ToJson(issuer)),
                (ConfigKey, SecureStorageJson.ToJson(config)),
                ("certs/" + PkiCertificates.SerialKey(serial), SecureStorageJson.ToJson(new CertRecord { Certificate = issuer.Certificate, IssuerId = issuer.Id })),
            ], ct).ConfigureAwait(false);
        }
        finally
        {
            _writes.Release();
        }

        var data = CertData(issuer.Certificate, issuer, PkiCertificates.FormatSerial(serial), new DateTimeOffset(certificate.NotAfter.ToUniversalTime()));
        if (match["type"] == "exported")
        {
            data["private_key"] = issuer.PrivateKey;
            data["private_key_type"] = "ec";
        }

        return KmsResponse.WithData(data);
    }

    /// <summary>
    /// <c>intermediate/generate</c>: a key waiting for <c>intermediate/set-signed</c>. Refused on a KMS-rooted mount,
    /// whose intermediates the KMS makes itself (<see cref="RotateIntermediateAsync"/>) with keys that never leave it.
    /// </summary>
    private async Task<KmsResponse?> GenerateIntermediate(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        RefuseOnKmsRoot("intermediate/generate");
        var f = request.Fields;
        var commonName = f.RequiredString("common_name");
        var bits = CaKeyBits(f);
        PkiRole.RejectUnknown(f, ["common_name", "key_type", "key_bits"]);
        using var key = PkiCertificates.NewCaKey(bits);
        var csr = new CertificateRequest(PkiCertificates.Subject(commonName), key, bits > 256 ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256);
        var keyId = Convert.ToHexStringLower(SHA256.HashData(key.ExportSubjectPublicKeyInfo()));
        var pending = new PendingKey { PrivateKey = key.ExportPkcs8PrivateKeyPem(), CreatedAt = _time.GetUtcNow() };
        await _storage.PutJsonAsync("pending/" + keyId, pending, ct).ConfigureAwait(false);
        var data = new JsonObject { ["csr"] = csr.CreateSigningRequestPem(), ["key_id"] = keyId, ["key_type"] = "ec" };
        if (match["type"] == "exported")
        {
            data["private_key"] = pending.PrivateKey;
            data["private_key_type"] = "ec";
        }

        return KmsResponse.WithData(data);
    }

    /// <summary>
    /// <c>root/sign-intermediate</c>: signs a caller's CSR as a CA under the mount's own root. Refused on a KMS-rooted
    /// mount, whatever the token: that would give the caller a CA under the root clients pin for function certificates.
    /// </summary>
    private async Task<KmsResponse?> SignIntermediate(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        RefuseOnKmsRoot("root/sign-intermediate");
        var f = request.Fields;
        var csr = ParseCsr(f.RequiredString("csr"), "csr");
        CheckCsrKey(csr.PublicKey, null);
        var commonName = f.String("common_name");
        var ttl = f.DurationUnlessZero("ttl") ?? DefaultIntermediateTtl;
        PkiRole.RejectUnknown(f, ["csr", "common_name", "ttl", "format"]);
        var (signerId, parents) = await RootSignerAsync(ct).ConfigureAwait(false);
        using var signer = await LoadKeyAsync(signerId, ct).ConfigureAwait(false);
        var subject = commonName is null ? csr.SubjectName : PkiCertificates.Subject(commonName);
        var now = _time.GetUtcNow();
        var serial = PkiCertificates.NewSerial();
        var request2 = new CertificateRequest(subject, csr.PublicKey, signer.Hash);
        PkiCertificates.AddCaExtensions(request2, signer.Certificate, root: false);
        using var certificate = PkiCertificates.Sign(request2, signer, now, ttl, serial);
        var pem = PkiCertificates.Pem(certificate);
        await _storage.PutJsonAsync("certs/" + PkiCertificates.SerialKey(serial), new CertRecord { Certificate = pem, IssuerId = signerId }, ct).ConfigureAwait(false);
        var signerPem = PkiCertificates.Pem(signer.Certificate);
        return KmsResponse.WithData(new JsonObject
        {
            ["certificate"] = pem,
            ["issuing_ca"] = signerPem,
            ["ca_chain"] = JsonValues.Strings([pem, signerPem, .. parents]),
            ["serial_number"] = PkiCertificates.FormatSerial(serial),
            ["expiration"] = new DateTimeOffset(certificate.NotAfter.ToUniversalTime()).ToUnixTimeSeconds(),
        });
    }

    /// <summary>
    /// <c>intermediate/set-signed</c>: installs a CA certificate for a key from <c>intermediate/generate</c> as the
    /// default issuer. Refused on a KMS-rooted mount: its issuers are only the ones the KMS made under its root.
    /// </summary>
    private async Task<KmsResponse?> SetSigned(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        RefuseOnKmsRoot("intermediate/set-signed");
        var f = request.Fields;
        var bundle = f.RequiredString("certificate");
        PkiRole.RejectUnknown(f, ["certificate"]);
        List<X509Certificate2> certificates;
        try
        {
            certificates = PkiCertificates.ReadCertificates(bundle);
        }
        catch (Exception e) when (e is CryptographicException or FormatException)
        {
            throw KmsException.BadRequest("invalid 'certificate': not a PEM certificate bundle");
        }

        if (certificates.Count == 0)
        {
            throw KmsException.BadRequest("invalid 'certificate': no PEM certificate found");
        }

        var leaf = certificates[0];
        if (leaf.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is not { CertificateAuthority: true })
        {
            throw KmsException.BadRequest("invalid 'certificate': it is not a CA certificate");
        }

        var keyId = Convert.ToHexStringLower(SHA256.HashData(leaf.PublicKey.ExportSubjectPublicKeyInfo()));
        var pending = await _storage.GetJsonAsync<PendingKey>("pending/" + keyId, ct).ConfigureAwait(false)
            ?? throw KmsException.BadRequest("invalid 'certificate': its key was not generated by intermediate/generate on this mount");
        var parents = certificates.Skip(1).Select(PkiCertificates.Pem).ToList();
        var issuer = new IssuerRecord
        {
            Id = NewIssuerId(),
            Certificate = PkiCertificates.Pem(leaf),
            Parents = parents,
            PrivateKey = pending.PrivateKey,
            CreatedAt = _time.GetUtcNow(),
        };
        foreach (var c in certificates)
        {
            c.Dispose();
        }

        await InstallIssuerAsync(issuer, [("pending/" + keyId, null)], ct).ConfigureAwait(false);
        return KmsResponse.WithData(new JsonObject { ["imported_issuers"] = JsonValues.Strings([issuer.Id]), ["issuer_id"] = issuer.Id });
    }

    private async Task<KmsResponse?> Rotate(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var commonName = f.String("common_name");
        var ttl = f.DurationUnlessZero("ttl");
        var bits = CaKeyBits(f, DefaultIntermediateKeyBits);
        PkiRole.RejectUnknown(f, ["common_name", "ttl", "key_type", "key_bits"]);
        var (issuer, previous) = await RotateIntermediateAsync(new IntermediateSpec(commonName, ttl, bits), onlyIf: null, ct).ConfigureAwait(false);
        return KmsResponse.WithData(new JsonObject
        {
            ["issuer_id"] = issuer.Id,
            ["previous_issuer_id"] = previous,
            ["certificate"] = issuer.Certificate,
            ["ca_chain"] = JsonValues.Strings(ChainOf(issuer)),
        });
    }

    /// <summary>
    /// Makes a new intermediate under the mount's root and makes it the default; the previous default becomes
    /// retiring, so leaves it signed keep validating against <c>ca_chain</c> until they expire. Issuance never
    /// waits on this: it reads whichever default is current.
    /// </summary>
    private async Task<(IssuerRecord Issuer, string? Previous)> RotateIntermediateAsync(IntermediateSpec spec, ExpectedDefault? onlyIf, CancellationToken ct)
    {
        var (signerId, parents) = await RootSignerAsync(ct).ConfigureAwait(false);
        using var signer = await LoadKeyAsync(signerId, ct).ConfigureAwait(false);
        using var key = PkiCertificates.NewCaKey(spec.KeyBits);
        var now = _time.GetUtcNow();
        var name = spec.CommonName ?? "Morphisms Functions Intermediate CA " + now.ToString("yyyy-MM-dd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        var csr = new CertificateRequest(PkiCertificates.Subject(name), key, spec.KeyBits == 384 ? HashAlgorithmName.SHA384 : HashAlgorithmName.SHA256);
        PkiCertificates.AddCaExtensions(csr, signer.Certificate, root: false);
        if (_kmsRoot)
        {
            // Marked like the KMS root, so a KMS pin at it (or a KMS TLS certificate issued here) is refused. Other
            // mounts' CAs are the operator's own and may well issue the KMS's TLS certificate.
            csr.CertificateExtensions.Add(KmsPkiCaMarker.ToExtension());
        }

        using var certificate = PkiCertificates.Sign(csr, signer, now, spec.Ttl ?? DefaultIntermediateTtl, PkiCertificates.NewSerial());
        var issuer = new IssuerRecord
        {
            Id = NewIssuerId(),
            Certificate = PkiCertificates.Pem(certificate),
            Parents = [PkiCertificates.Pem(signer.Certificate), .. parents],
            PrivateKey = key.ExportPkcs8PrivateKeyPem(),
            CreatedAt = now,
        };
        var previous = await InstallIssuerAsync(issuer, [], ct, onlyIf).ConfigureAwait(false);
        return (issuer, previous);
    }

    /// <summary>
    /// The default issuer for a new leaf. On a KMS-rooted mount the KMS makes and keeps the intermediates itself and
    /// nobody has to rotate them by hand, so one with less than a third of its lifetime left (or expired) is replaced
    /// here first, by a new intermediate of the same lifetime and key size: a year after initialisation attest-logins
    /// still get certificates, not a clipped or refused one. On other mounts the operator rotates, and an expired
    /// default is refused by <see cref="PkiCertificates.Sign"/>. The signer comes rented: give it back to <c>_signers</c>.
    /// </summary>
    private async Task<(IssuerRecord Issuer, CaKey Signer)> IssuingIssuerAsync(DateTimeOffset now, CancellationToken ct)
    {
        var issuer = await DefaultIssuerAsync(ct).ConfigureAwait(false);
        var signer = _signers.Rent(issuer);
        if (!_kmsRoot || !RenewalDue(signer.Certificate, now))
        {
            return (issuer, signer);
        }

        var certificate = signer.Certificate;
        var lifetime = certificate.NotAfter.ToUniversalTime() - certificate.NotBefore.ToUniversalTime() - PkiCertificates.Backdate;
        int keyBits;
        using (var publicKey = certificate.GetECDsaPublicKey())
        {
            keyBits = publicKey?.KeySize ?? DefaultIntermediateKeyBits;
        }

        _signers.Return(issuer, signer);

        // Concurrent logins that all found it due make one successor: the install only happens while this one is
        // still the default.
        await RotateIntermediateAsync(new IntermediateSpec(null, lifetime, keyBits), new ExpectedDefault(issuer.Id), ct).ConfigureAwait(false);

        // The successor, this call's or a concurrent one's.
        issuer = await DefaultIssuerAsync(ct).ConfigureAwait(false);
        return (issuer, _signers.Rent(issuer));
    }

    /// <summary>True when <paramref name="certificate"/> has less than a third of its lifetime left at <paramref name="now"/>.</summary>
    private static bool RenewalDue(X509Certificate2 certificate, DateTimeOffset now)
    {
        var notBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        var notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        return (notAfter - now) * 3 < notAfter - notBefore;
    }

    /// <summary>An install that happens only while the mount's default issuer is still <paramref name="Id"/> (null: while it has none).</summary>
    private sealed record ExpectedDefault(string? Id);

    /// <summary>
    /// Stores <paramref name="issuer"/> as the new default in one transaction and retires the old default (a root only
    /// when the new issuer does not chain to it); with
    /// <paramref name="onlyIf"/>, only while the default is still the one expected (returning the current default otherwise).
    /// </summary>
    private async Task<string?> InstallIssuerAsync(IssuerRecord issuer, List<(string, byte[]?)> extra, CancellationToken ct, ExpectedDefault? onlyIf = null)
    {
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var config = await LoadConfigAsync(ct).ConfigureAwait(false);
            var previousId = config.Default;
            if (onlyIf is not null && previousId != onlyIf.Id)
            {
                // Another request created the first intermediate, or replaced the one due, meanwhile; one is enough.
                return previousId;
            }

            issuer.Sequence = ++config.LastIssuerSequence;
            var ops = new List<(string, byte[]?)>(extra) { ("issuers/" + issuer.Id, SecureStorageJson.ToJson(issuer)) };
            // A root stays one while the new issuer chains to it; one it does not (a rotation under a newer root, an
            // intermediate signed elsewhere) retires like an intermediate, so its leaves stay in ca_chain until they expire.
            if (previousId is not null && await LoadIssuerAsync(previousId, ct).ConfigureAwait(false) is { } previous
                && (!previous.IsRoot || !issuer.Parents.Contains(previous.Certificate, StringComparer.Ordinal)))
            {
                previous.RetiredAt = issuer.CreatedAt;
                ops.Add(("issuers/" + previous.Id, SecureStorageJson.ToJson(previous)));
            }

            config.Default = issuer.Id;
            ops.Add((ConfigKey, SecureStorageJson.ToJson(config)));
            await _storage.TransactAsync(ops, ct).ConfigureAwait(false);
            return previousId;
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// The mount's root: the KMS root CA, or the mount's own (non-retired) self-signed issuer. On a KMS-rooted mount
    /// only <see cref="RotateIntermediateAsync"/> signs with it: the KMS's own intermediate, key made and kept here.
    /// </summary>
    private async Task<(string Id, List<string> Parents)> RootSignerAsync(CancellationToken ct)
    {
        if (_kmsRoot)
        {
            return (KmsRootCa.KmsRootIssuerId, []);
        }

        var root = (await LoadIssuersAsync(ct).ConfigureAwait(false)).LastOrDefault(i => i.IsRoot && i.RetiredAt is null)
            ?? throw KmsException.BadRequest("this mount has no root issuer: generate one with root/generate first");
        return (root.Id, []);
    }

    private async Task<KmsResponse?> ListIssuers(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var config = await LoadConfigAsync(ct).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        var issuers = await LoadIssuersAsync(ct).ConfigureAwait(false);
        var info = new JsonObject();
        foreach (var i in issuers)
        {
            info[i.Id] = IssuerJson(i, now, config.Default);
        }

        return KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(issuers.Select(i => i.Id)), ["key_info"] = info, ["default"] = config.Default });
    }

    private async Task<KmsResponse?> ReadIssuer(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var config = await LoadConfigAsync(ct).ConfigureAwait(false);
        var id = match["ref"] == "default" ? config.Default ?? throw KmsException.NotFound() : match["ref"];
        var issuer = await LoadIssuerAsync(id, ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        var data = IssuerJson(issuer, _time.GetUtcNow(), config.Default);
        data["issuer_id"] = issuer.Id;
        data["certificate"] = issuer.Certificate;
        data["ca_chain"] = JsonValues.Strings(ChainOf(issuer));
        return KmsResponse.WithData(data);
    }

    private static JsonObject IssuerJson(IssuerRecord i, DateTimeOffset now, string? defaultId)
    {
        using var certificate = X509Certificate2.CreateFromPem(i.Certificate);
        return new JsonObject
        {
            ["state"] = i.StateAt(now, defaultId),
            ["is_default"] = i.Id == defaultId,
            ["common_name"] = certificate.GetNameInfo(X509NameType.SimpleName, false),
            ["not_after"] = Timestamps.Rfc3339(new DateTimeOffset(certificate.NotAfter.ToUniversalTime())),
            ["retired_at"] = i.RetiredAt is { } r ? Timestamps.Rfc3339(r) : null,
            ["last_leaf_not_after"] = i.LastLeafNotAfter is { } l ? Timestamps.Rfc3339(l) : null,
        };
    }

    private async Task<KmsResponse?> ReadFunctionConfig(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var config = await LoadConfigAsync(ct).ConfigureAwait(false);
        return KmsResponse.WithData(new JsonObject { ["domain"] = config.FunctionDomain ?? DefaultFunctionDomain });
    }

    private async Task<KmsResponse?> WriteFunctionConfig(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var domain = f.RequiredString("domain").ToLowerInvariant();
        PkiRole.RejectUnknown(f, ["domain"]);
        if (!PkiRole.IsHostname(domain) || domain.StartsWith('*'))
        {
            throw KmsException.BadRequest("invalid 'domain': it must be a DNS name");
        }

        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var config = await LoadConfigAsync(ct).ConfigureAwait(false);
            config.FunctionDomain = domain;
            await _storage.PutJsonAsync(ConfigKey, config, ct).ConfigureAwait(false);
            return null;
        }
        finally
        {
            _writes.Release();
        }
    }

    private static int CaKeyBits(Fields f, int defaultBits = 384)
    {
        var type = f.String("key_type") ?? "ec";
        if (type != "ec")
        {
            throw KmsException.BadRequest("invalid 'key_type': CA keys are ECDSA (\"ec\")");
        }

        var bits = f.NonNegativeInt("key_bits") ?? defaultBits;
        return bits switch
        {
            0 => defaultBits,
            384 => 384,
            256 => 256,
            _ => throw KmsException.BadRequest("invalid 'key_bits': use 256 or 384"),
        };
    }

    /// <summary>Parses and verifies a CSR (its self-signature proves possession of the key); 400 naming the field.</summary>
    private static CertificateRequest ParseCsr(string pem, string field)
    {
        try
        {
            return CertificateRequest.LoadSigningRequestPem(pem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException or FormatException)
        {
            throw KmsException.BadRequest($"invalid '{field}': not a PEM certificate request with a valid signature");
        }
    }
}
