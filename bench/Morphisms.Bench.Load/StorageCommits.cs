using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Morphisms.Attestation.Trust;

namespace Morphisms.Bench.Load;

/// <summary>
/// The KMS's storage-commit histogram (<c>kms_storage_commit_duration_seconds</c> from <c>sys/metrics</c>), read
/// before and after a run so that a run's latency tail can be laid beside its commits: every write request waits for
/// the commit (statements and fsync) that holds it, so a slow disk shows as slow commits.
/// </summary>
internal sealed partial class StorageCommits : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _token;

    public StorageCommits(Uri kms, KmsPin pin, string token)
    {
        // The agent's own pin check, as every other call of the bench to the KMS: nothing else is trusted.
        var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (request, presented, chain, errors) => pin.Check(presented, chain, errors, out _),
        };
        _http = new HttpClient(handler) { BaseAddress = kms, Timeout = TimeSpan.FromSeconds(30) };
        _token = token;
    }

    /// <summary>Cumulative commit counts by bucket upper bound in seconds (+Inf as <see cref="double.PositiveInfinity"/>).</summary>
    public async Task<SortedDictionary<double, long>> SnapshotAsync(CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/sys/metrics?format=prometheus");
        request.Headers.Add("X-Vault-Token", _token);
        using var response = await _http.SendAsync(request, ct);
        response.EnsureSuccessStatusCode();
        var buckets = new SortedDictionary<double, long>();
        foreach (Match m in Bucket().Matches(await response.Content.ReadAsStringAsync(ct)))
        {
            var le = m.Groups["le"].Value == "+Inf" ? double.PositiveInfinity : double.Parse(m.Groups["le"].Value, CultureInfo.InvariantCulture);
            buckets[le] = long.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture);
        }

        return buckets;
    }

    /// <summary>How many commits a run made, and how many took longer than 10 ms, 100 ms and 1 s.</summary>
    public static CommitCounts Between(SortedDictionary<double, long> before, SortedDictionary<double, long> after)
    {
        long Delta(double le) => after.GetValueOrDefault(le) - before.GetValueOrDefault(le);
        var total = Delta(double.PositiveInfinity);
        return new CommitCounts(total, total - Delta(0.01), total - Delta(0.1), total - Delta(1));
    }

    public void Dispose() => _http.Dispose();

    [GeneratedRegex("^kms_storage_commit_duration_seconds_bucket\\{le=\"(?<le>[^\"]+)\"\\} (?<n>\\d+)$", RegexOptions.Multiline)]
    private static partial Regex Bucket();
}

/// <summary>A run's storage commits: all, and those over 10 ms, 100 ms and 1 s.</summary>
internal sealed record CommitCounts(long Total, long Over10Ms, long Over100Ms, long Over1S)
{
    public JsonObject ToJson() => new()
    {
        ["commits"] = Total,
        ["over_10_ms"] = Over10Ms,
        ["over_100_ms"] = Over100Ms,
        ["over_1_s"] = Over1S,
    };

    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Total} commits, {Over10Ms} over 10 ms, {Over100Ms} over 100 ms, {Over1S} over 1 s");
}
