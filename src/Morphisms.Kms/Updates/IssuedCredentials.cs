using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Pki;

namespace Morphisms.Kms.Updates;

/// <summary>
/// The index of what attest-login issued per function revision, under the barrier:
/// <c>morphisms/issued/FUNCTION/REVISION/tokens/EXPIRY-HASH</c> (the token's storage hash; the unix time after
/// which even renewals cannot keep it alive is in the key, so expired entries are pruned from a listing alone)
/// and <c>morphisms/issued/FUNCTION/REVISION/certs/EXPIRY-SERIAL</c> (the certificate's NotAfter, likewise; entries
/// written before it was there are plain <c>SERIAL</c> and are kept until a retirement revokes them). Retiring a
/// revision walks these instead of every token in the KMS.
/// </summary>
internal static class IssuedCredentials
{
    private const string Prefix = "morphisms/issued/";

    /// <summary>
    /// Adds a login's index entries to <paramref name="writes"/> (committed by the caller with the token and the
    /// certificate they name); with <paramref name="prune"/>, also the deletion of the revision's expired token entries
    /// and of its certificate entries past the CRL's retention (revoking those could no longer change any CRL).
    /// </summary>
    public static async Task AddAsync(ISecureStorage storage, IssuedLogin login, DateTimeOffset now, bool prune, WriteSet writes, CancellationToken ct)
    {
        writes.Add(storage, TokensOf(login.Function, login.Revision) + login.MaxExpiry.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + "-" + login.TokenHash, "{}"u8.ToArray());
        if (login.CertificateSerial.Length > 0)
        {
            writes.Add(storage, CertsOf(login.Function, login.Revision) + login.CertificateNotAfter.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + "-" + login.CertificateSerial, "{}"u8.ToArray());
        }

        if (prune)
        {
            foreach (var (key, _) in await TokenEntriesAsync(storage, login.Function, login.Revision, ct).ConfigureAwait(false))
            {
                if (ExpiryOf(key) is { } expiry && expiry < now.ToUnixTimeSeconds())
                {
                    writes.Add(storage, TokensOf(login.Function, login.Revision) + key, null);
                }
            }

            foreach (var entry in await CertEntriesAsync(storage, login.Function, login.Revision, ct).ConfigureAwait(false))
            {
                if (entry.NotAfter is { } notAfter && PkiBackend.PastRetention(notAfter, now))
                {
                    writes.Add(storage, CertsOf(login.Function, login.Revision) + entry.Key, null);
                }
            }
        }
    }

    /// <summary>
    /// The revisions of <paramref name="function"/> with index entries left, whether or not the function is still
    /// registered: the index is keyed by name, so what a deleted function was issued can still be found and revoked.
    /// </summary>
    public static async Task<List<int>> RevisionsAsync(ISecureStorage storage, string function, CancellationToken ct) =>
        [.. (await storage.ListAsync(Prefix + function + "/", ct).ConfigureAwait(false))
            .Select(k => int.TryParse(k.AsSpan().TrimEnd('/'), NumberStyles.None, CultureInfo.InvariantCulture, out var revision) ? revision : 0)
            .Where(revision => revision > 0)];

    /// <summary>The revision's indexed tokens: (index entry name, token hash).</summary>
    public static async Task<List<(string Key, string Hash)>> TokenEntriesAsync(ISecureStorage storage, string function, int revision, CancellationToken ct) =>
        [.. (await storage.ListAsync(TokensOf(function, revision), ct).ConfigureAwait(false))
            .Select(k => (k, k[(k.IndexOf('-', StringComparison.Ordinal) + 1)..]))];

    /// <summary>The revision's indexed certificates: (index entry name, serial in lowercase hex, NotAfter or null for an entry from before it was recorded).</summary>
    public static async Task<List<(string Key, string Serial, DateTimeOffset? NotAfter)>> CertEntriesAsync(ISecureStorage storage, string function, int revision, CancellationToken ct) =>
        [.. (await storage.ListAsync(CertsOf(function, revision), ct).ConfigureAwait(false))
            .Select(k => (k, k[(k.IndexOf('-', StringComparison.Ordinal) + 1)..], ExpiryOf(k) is { } s ? DateTimeOffset.FromUnixTimeSeconds(s) : (DateTimeOffset?)null))];

    /// <summary>The storage key of a token entry.</summary>
    public static string TokenKey(string function, int revision, string entry) => TokensOf(function, revision) + entry;

    /// <summary>The storage key of a certificate entry.</summary>
    public static string CertKey(string function, int revision, string entry) => CertsOf(function, revision) + entry;

    private static string Base(string function, int revision) => Prefix + function + "/" + revision.ToString(CultureInfo.InvariantCulture) + "/";

    private static string TokensOf(string function, int revision) => Base(function, revision) + "tokens/";

    private static string CertsOf(string function, int revision) => Base(function, revision) + "certs/";

    private static long? ExpiryOf(string key) =>
        long.TryParse(key.AsSpan(0, Math.Max(0, key.IndexOf('-', StringComparison.Ordinal))), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
}

/// <summary>What one attest-login issued, as the retirement index records it.</summary>
/// <param name="Function">The function.</param>
/// <param name="Revision">The revision that matched.</param>
/// <param name="TokenHash">The token's storage hash.</param>
/// <param name="MaxExpiry">When even renewals can no longer keep the token alive.</param>
/// <param name="CertificateSerial">The certificate's serial (lowercase hex), or empty when none was issued.</param>
/// <param name="CertificateNotAfter">The certificate's expiry.</param>
internal sealed record IssuedLogin(string Function, int Revision, string TokenHash, DateTimeOffset MaxExpiry, string CertificateSerial, DateTimeOffset CertificateNotAfter = default);
