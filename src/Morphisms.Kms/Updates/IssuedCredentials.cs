using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Kms.Barrier;

namespace Morphisms.Kms.Updates;

/// <summary>
/// The index of what attest-login issued per function revision, under the barrier:
/// <c>morphisms/issued/FUNCTION/REVISION/tokens/EXPIRY-HASH</c> (the token's storage hash; the unix time after
/// which even renewals cannot keep it alive is in the key, so expired entries are pruned from a listing alone)
/// and <c>morphisms/issued/FUNCTION/REVISION/certs/SERIAL</c>. Retiring a revision walks these instead of every
/// token in the KMS.
/// </summary>
internal static class IssuedCredentials
{
    private const string Prefix = "morphisms/issued/";

    /// <summary>
    /// Records a login's token and certificate (one transaction); with <paramref name="prune"/>, also drops the revision's
    /// expired token entries in that transaction.
    /// </summary>
    public static async Task RecordAsync(ISecureStorage storage, string function, int revision, string tokenHash, DateTimeOffset maxExpiry, string certificateSerial, DateTimeOffset now, bool prune, CancellationToken ct)
    {
        var ops = new List<(string, byte[]?)> { (TokensOf(function, revision) + maxExpiry.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + "-" + tokenHash, "{}"u8.ToArray()) };
        if (certificateSerial.Length > 0)
        {
            ops.Add((CertsOf(function, revision) + certificateSerial, "{}"u8.ToArray()));
        }

        if (prune)
        {
            foreach (var (key, _) in await TokenEntriesAsync(storage, function, revision, ct).ConfigureAwait(false))
            {
                if (ExpiryOf(key) is { } expiry && expiry < now.ToUnixTimeSeconds())
                {
                    ops.Add((TokensOf(function, revision) + key, null));
                }
            }
        }

        await storage.TransactAsync(ops, ct).ConfigureAwait(false);
    }

    /// <summary>The revision's indexed tokens: (index entry name, token hash).</summary>
    public static async Task<List<(string Key, string Hash)>> TokenEntriesAsync(ISecureStorage storage, string function, int revision, CancellationToken ct) =>
        [.. (await storage.ListAsync(TokensOf(function, revision), ct).ConfigureAwait(false))
            .Select(k => (k, k[(k.IndexOf('-', StringComparison.Ordinal) + 1)..]))];

    /// <summary>The revision's certificate serials (lowercase hex).</summary>
    public static Task<IReadOnlyList<string>> SerialsAsync(ISecureStorage storage, string function, int revision, CancellationToken ct) =>
        storage.ListAsync(CertsOf(function, revision), ct);

    /// <summary>The storage key of a token entry.</summary>
    public static string TokenKey(string function, int revision, string entry) => TokensOf(function, revision) + entry;

    /// <summary>The storage key of a certificate entry.</summary>
    public static string CertKey(string function, int revision, string serial) => CertsOf(function, revision) + serial;

    private static string Base(string function, int revision) => Prefix + function + "/" + revision.ToString(CultureInfo.InvariantCulture) + "/";

    private static string TokensOf(string function, int revision) => Base(function, revision) + "tokens/";

    private static string CertsOf(string function, int revision) => Base(function, revision) + "certs/";

    private static long? ExpiryOf(string key) =>
        long.TryParse(key.AsSpan(0, Math.Max(0, key.IndexOf('-', StringComparison.Ordinal))), NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
}
