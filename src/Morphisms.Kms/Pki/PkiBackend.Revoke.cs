using System.Collections.Concurrent;
using System.Numerics;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Pki;

/// <summary>Revocation, CRLs and certificate/chain reads.</summary>
internal sealed partial class PkiBackend
{
    /// <summary>CRL lifetime: Vault's default expiry (72 h); a signed CRL is served for at most half of it (<see cref="CrlAsync"/>).</summary>
    private static readonly TimeSpan CrlLifetime = TimeSpan.FromHours(72);

    /// <summary>How many issuers' signed CRLs are kept (<see cref="CrlAsync"/>).</summary>
    private const int MaxCachedCrls = 16;

    private readonly ConcurrentDictionary<string, SignedCrl> _crls = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _crlSigning = new(1, 1);

    /// <summary>
    /// How long past its NotAfter a revoked certificate stays on the CRL: one CRL lifetime, so a CRL issued after the
    /// certificate expired still lists it and no relying party holding a current CRL is without the revocation (RFC 5280
    /// §3.3; Vault's <c>pki/tidy</c> keeps entries for the same 72 h <c>safety_buffer</c>). After that the entry is
    /// dropped, since an expired certificate is refused for its expiry alone; otherwise every revocation stayed on every
    /// CRL for good. Revoking such a certificate then has no effect, so the retirement index forgets it too.
    /// </summary>
    internal static TimeSpan ExpiredRetention => CrlLifetime;

    /// <summary>Whether a certificate expiring at <paramref name="notAfter"/> is past <see cref="ExpiredRetention"/> at <paramref name="now"/>.</summary>
    internal static bool PastRetention(DateTimeOffset notAfter, DateTimeOffset now) => notAfter + ExpiredRetention < now;

    private async Task<KmsResponse?> Revoke(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var f = request.Fields;
        var text = f.RequiredString("serial_number");
        PkiRole.RejectUnknown(f, ["serial_number"]);
        var serial = PkiCertificates.ParseSerial(text) ?? throw KmsException.BadRequest("invalid 'serial_number': use hex pairs such as 4a:0b:…");
        var key = PkiCertificates.SerialKey(serial);
        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var record = await _storage.GetJsonAsync<CertRecord>("certs/" + key, ct).ConfigureAwait(false)
                ?? throw KmsException.BadRequest("invalid 'serial_number': no certificate with this serial was issued by this mount");
            if (record.RevokedAt is { } already)
            {
                return KmsResponse.WithData(new JsonObject { ["revocation_time"] = already.ToUnixTimeSeconds(), ["state"] = "revoked" });
            }

            using var certificate = X509Certificate2.CreateFromPem(record.Certificate);
            if (await LoadIssuerAsync(record.IssuerId, ct).ConfigureAwait(false) is null && record.IssuerId != KmsRootCa.KmsRootIssuerId)
            {
                throw KmsException.BadRequest("invalid 'serial_number': its issuer no longer exists on this mount");
            }

            var now = _time.GetUtcNow();
            record.RevokedAt = now;
            var crl = await LoadCrlAsync(ct).ConfigureAwait(false);
            crl.Revoked.Add(new RevokedEntry(key, record.IssuerId, now, new DateTimeOffset(certificate.NotAfter.ToUniversalTime())));

            // The stored list sheds its expired entries with the write that adds one, in the same transaction, so it
            // is bounded by the revocations of the last certificate lifetime (plus the margin), not by all of them.
            // The stored number takes over the count CrlNumber added for them, so the served number still grows.
            var pruned = crl.Revoked.RemoveAll(e => PastRetention(e.NotAfter, now));
            crl.Number += 1 + pruned;
            await _storage.TransactAsync(
            [
                ("certs/" + key, SecureStorageJson.ToJson(record)),
                (CrlKey, SecureStorageJson.ToJson(crl)),
            ], ct).ConfigureAwait(false);
            return KmsResponse.WithData(new JsonObject { ["revocation_time"] = now.ToUnixTimeSeconds(), ["revocation_time_rfc3339"] = Timestamps.Rfc3339(now), ["state"] = "revoked" });
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<CrlState> LoadCrlAsync(CancellationToken ct) =>
        await _storage.GetJsonAsync<CrlState>(CrlKey, ct).ConfigureAwait(false) ?? new CrlState();

    /// <summary>
    /// The CRL number at <paramref name="now"/>: the stored number plus the stored entries that have aged out since
    /// the last revocation. A read builds the CRL from the stored state (or reuses the one it signed for the same
    /// contents), and the contents change in two ways: a revocation (which bumps the stored number and folds the aged
    /// entries it prunes into it) and an entry passing
    /// <see cref="ExpiredRetention"/> (which writes nothing). Counting the aged entries makes the number grow with
    /// each of them too, so two CRLs with different contents never share a number (RFC 5280 §5.2.3), without a read
    /// having to write, or to take the mount's write lock, and without relying on the clock beyond what the aging
    /// itself does (a number taken from thisUpdate would jump back after a failover to a node whose clock is behind).
    /// The count is mount-wide, like the stored number: another issuer's entry ageing out bumps it too, harmlessly.
    /// </summary>
    private static long CrlNumber(CrlState crl, DateTimeOffset now) =>
        crl.Number + crl.Revoked.Count(e => PastRetention(e.NotAfter, now));

    /// <summary>
    /// The DER CRL of <paramref name="issuer"/>: the revoked certificates it signed, but for those past
    /// <see cref="ExpiredRetention"/>. The CRL routes need no token, so signing on every read would let anyone make the
    /// KMS sign as fast as they can send (and hand out a different CRL under one number each time). The signed CRL is
    /// kept and served again while what it lists is unchanged: the issuer's certificate, the number and the entries,
    /// taken from the stored state on every read, so a revocation (this node's, or one another HA node wrote before a
    /// failover) and an entry ageing out show on the next read. It is signed again once half its lifetime has passed,
    /// so a served CRL always has at least 36 h left, and one signing at a time keeps a burst of reads to one signature.
    /// </summary>
    private async Task<byte[]> CrlAsync(IssuerRecord issuer, CancellationToken ct)
    {
        var crl = await LoadCrlAsync(ct).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        var number = CrlNumber(crl, now);

        // Entries past retention may still be stored (they go with the next revocation); they are not listed.
        RevokedEntry[] entries = [.. crl.Revoked.Where(e => e.IssuerId == issuer.Id && !PastRetention(e.NotAfter, now))];
        if (ReusableCrl(issuer, number, entries, now) is { } der)
        {
            return der;
        }

        await _crlSigning.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // A read that waited here finds what the one before it signed.
            if (ReusableCrl(issuer, number, entries, now) is { } signed)
            {
                return signed;
            }

            var signer = _signers.Rent(issuer);
            try
            {
                var builder = new CertificateRevocationListBuilder();
                foreach (var entry in entries)
                {
                    builder.AddEntry(Convert.FromHexString(entry.Serial), entry.RevokedAt);
                }

                der = builder.Build(
                    signer.Certificate.SubjectName,
                    signer.Generator,
                    new BigInteger(number),
                    now + CrlLifetime,
                    signer.Hash,
                    X509AuthorityKeyIdentifierExtension.CreateFromCertificate(signer.Certificate, true, false),
                    now - PkiCertificates.Backdate);
            }
            finally
            {
                _signers.Return(issuer, signer);
            }

            // One per issuer, and issuers are made only by token holders; the bound is against a mount rotated for years.
            if (_crls.Count >= MaxCachedCrls && !_crls.ContainsKey(issuer.Id))
            {
                _crls.Clear();
            }

            _crls[issuer.Id] = new SignedCrl(issuer.Certificate, number, entries, now, der);
            return der;
        }
        finally
        {
            _crlSigning.Release();
        }
    }

    /// <summary>The kept CRL of <paramref name="issuer"/> if it lists exactly this and is younger than half its lifetime (a clock gone back signs anew).</summary>
    private byte[]? ReusableCrl(IssuerRecord issuer, long number, RevokedEntry[] entries, DateTimeOffset now) =>
        _crls.TryGetValue(issuer.Id, out var kept)
        && kept.IssuerCertificate == issuer.Certificate
        && kept.Number == number
        && kept.Entries.AsSpan().SequenceEqual(entries)
        && now >= kept.SignedAt
        && now - kept.SignedAt < CrlLifetime / 2
            ? kept.Der
            : null;

    /// <summary>
    /// The default issuer for a CRL read. The CRL routes need no token, so this never creates the first intermediate
    /// (a new CA key and a storage write) as <see cref="DefaultIssuerAsync"/> does for issuance: a mount without an
    /// issuer answers 400, as Vault does ("no default issuer currently configured"), and nothing is written.
    /// </summary>
    private async Task<IssuerRecord> CrlIssuerAsync(CancellationToken ct) =>
        await StoredDefaultIssuerAsync(ct).ConfigureAwait(false) ?? throw KmsException.BadRequest(_kmsRoot
            ? "no default issuer currently configured: the KMS makes this mount's first intermediate when it first issues a certificate, so it has no CRL yet"
            : "no default issuer currently configured: generate a root or set a signed intermediate first");

    private async Task<KmsResponse?> ReadCrlJson(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var issuer = await CrlIssuerAsync(ct).ConfigureAwait(false);
        var der = await CrlAsync(issuer, ct).ConfigureAwait(false);
        return KmsResponse.WithData(new JsonObject { ["certificate"] = PkiCertificates.Pem("X509 CRL", der), ["issuer_id"] = issuer.Id });
    }

    private async Task<KmsResponse?> ReadCrlPem(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var issuer = await CrlIssuerAsync(ct).ConfigureAwait(false);
        return Text(PkiCertificates.Pem("X509 CRL", await CrlAsync(issuer, ct).ConfigureAwait(false)), "application/pem-file");
    }

    private async Task<KmsResponse?> ReadIssuerCrl(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var issuer = match["ref"] == "default"
            ? await CrlIssuerAsync(ct).ConfigureAwait(false)
            : await LoadIssuerAsync(match["ref"], ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        var pem = PkiCertificates.Pem("X509 CRL", await CrlAsync(issuer, ct).ConfigureAwait(false));
        return match["pem"].Length > 0 ? Text(pem, "application/pem-file") : KmsResponse.WithData(new JsonObject { ["crl"] = pem, ["issuer_id"] = issuer.Id });
    }

    /// <summary>
    /// The served chain: the default issuer up to the root, then every retiring issuer (rotated out but with
    /// leaves still valid), so clients holding this bundle validate old and new leaves alike.
    /// </summary>
    private async Task<List<string>> ServedChainAsync(CancellationToken ct)
    {
        var current = await DefaultIssuerAsync(ct).ConfigureAwait(false);
        var now = _time.GetUtcNow();
        var chain = ChainOf(current);
        foreach (var issuer in await LoadIssuersAsync(ct).ConfigureAwait(false))
        {
            if (issuer.StateAt(now, current.Id) == "retiring")
            {
                chain.AddRange(ChainOf(issuer));
            }
        }

        return [.. chain.Distinct(StringComparer.Ordinal)];
    }

    private async Task<KmsResponse?> ReadCaChainPem(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        Text(PkiCertificates.Bundle(await ServedChainAsync(ct).ConfigureAwait(false)), "application/pem-file");

    private async Task<KmsResponse?> ReadCaChainJson(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var chain = await ServedChainAsync(ct).ConfigureAwait(false);
        return KmsResponse.WithData(new JsonObject { ["ca_chain"] = PkiCertificates.Bundle(chain), ["certificate"] = chain[0] });
    }

    private async Task<KmsResponse?> ReadCaPem(KmsRequest request, RouteMatch match, CancellationToken ct) =>
        Text((await DefaultIssuerAsync(ct).ConfigureAwait(false)).Certificate, "application/pem-file");

    private async Task<KmsResponse?> ReadCert(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        if (match["serial"] == "ca")
        {
            var issuer = await DefaultIssuerAsync(ct).ConfigureAwait(false);
            return KmsResponse.WithData(new JsonObject { ["certificate"] = issuer.Certificate, ["issuer_id"] = issuer.Id });
        }

        var serial = PkiCertificates.ParseSerial(match["serial"]) ?? throw KmsException.BadRequest("invalid serial number: use hex pairs such as 4a:0b:…");
        var record = await _storage.GetJsonAsync<CertRecord>("certs/" + PkiCertificates.SerialKey(serial), ct).ConfigureAwait(false) ?? throw KmsException.NotFound();
        return KmsResponse.WithData(new JsonObject
        {
            ["certificate"] = record.Certificate,
            ["issuer_id"] = record.IssuerId,
            ["revocation_time"] = record.RevokedAt?.ToUnixTimeSeconds() ?? 0,
            ["revocation_time_rfc3339"] = record.RevokedAt is { } r ? Timestamps.Rfc3339(r) : "",
        });
    }

    private async Task<KmsResponse?> ListCerts(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var keys = await _storage.ListAsync("certs/", ct).ConfigureAwait(false);
        return keys.Count == 0
            ? throw KmsException.NotFound()
            : KmsResponse.WithData(new JsonObject { ["keys"] = JsonValues.Strings(keys.Select(k => PkiCertificates.FormatSerial(Convert.FromHexString(k)))) });
    }

    /// <summary>A signed CRL and what it was built from: the issuer's certificate, the number and the entries.</summary>
    private sealed record SignedCrl(string IssuerCertificate, long Number, RevokedEntry[] Entries, DateTimeOffset SignedAt, byte[] Der);
}
