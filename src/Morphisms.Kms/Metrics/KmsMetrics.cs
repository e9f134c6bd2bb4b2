using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Morphisms.Kms.Metrics;

/// <summary>
/// Request counters and latency histograms, rendered in the Prometheus text format by hand: the set is small,
/// and labels are route names (never client-chosen paths, which may name secrets).
/// </summary>
internal sealed class KmsMetrics
{
    private static readonly double[] Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private readonly ConcurrentDictionary<(string Class, string Method, int Code), Counter> _requests = new();
    private readonly ConcurrentDictionary<string, Histogram> _latency = new();
    private readonly ConcurrentDictionary<(string Tee, string Outcome), Counter> _logins = new();
    private readonly ConcurrentDictionary<string, Counter> _challenges = new();
    private readonly Histogram _commits = new();
    private readonly Counter _committedTransactions = new();

    /// <summary>Counts one finished request.</summary>
    public void Observe(string pathClass, string method, int status, TimeSpan elapsed)
    {
        _requests.GetOrAdd((pathClass, method, status), _ => new Counter()).Increment();
        _latency.GetOrAdd(pathClass, _ => new Histogram()).Observe(elapsed.TotalSeconds);
    }

    /// <summary>Counts one attestation login by TEE type (<c>snp</c>, <c>sgx</c>, <c>tdx</c>, <c>unknown</c>) and outcome (<c>accepted</c>, <c>refused</c>, <c>invalid</c>, <c>busy</c>).</summary>
    public void ObserveLogin(string tee, string outcome) => _logins.GetOrAdd((tee, outcome), _ => new Counter()).Increment();

    /// <summary>
    /// Records one storage commit (a group-commit batch: its statements and its fsync) and how many transactions it
    /// held. A slow disk shows here first: every write request waits for the batch that holds it.
    /// </summary>
    public void ObserveCommit(TimeSpan elapsed, int transactions)
    {
        _commits.Observe(elapsed.TotalSeconds);
        _committedTransactions.Add(transactions);
    }

    /// <summary>Counts one challenge request by outcome (<c>issued</c>, <c>refused</c> for an unregistered function).</summary>
    public void ObserveChallenge(string outcome) => _challenges.GetOrAdd(outcome, _ => new Counter()).Increment();

    /// <summary>The exposition text; seal state and spent nonces come from the caller at scrape time.</summary>
    public string Render(bool initialized, bool isSealed, int unsealProgress, int spentNonces)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# HELP kms_http_requests_total HTTP requests handled, by route class, method and status code.");
        sb.AppendLine("# TYPE kms_http_requests_total counter");
        foreach (var ((cls, method, code), counter) in _requests.OrderBy(k => k.Key.Class, StringComparer.Ordinal).ThenBy(k => k.Key.Method, StringComparer.Ordinal).ThenBy(k => k.Key.Code))
        {
            sb.Append(CultureInfo.InvariantCulture, $"kms_http_requests_total{{class=\"{cls}\",method=\"{method}\",code=\"{code}\"}} {counter.Value}\n");
        }

        sb.AppendLine("# HELP kms_http_request_duration_seconds Request latency by route class.");
        sb.AppendLine("# TYPE kms_http_request_duration_seconds histogram");
        foreach (var (cls, h) in _latency.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            h.Render(sb, "kms_http_request_duration_seconds", $"class=\"{cls}\"");
        }

        sb.AppendLine("# HELP kms_storage_commit_duration_seconds Storage commits (SQLite group-commit batches, fsync included).");
        sb.AppendLine("# TYPE kms_storage_commit_duration_seconds histogram");
        _commits.Render(sb, "kms_storage_commit_duration_seconds", "");
        sb.AppendLine("# HELP kms_storage_committed_transactions_total Transactions those commits carried.");
        sb.AppendLine("# TYPE kms_storage_committed_transactions_total counter");
        sb.Append(CultureInfo.InvariantCulture, $"kms_storage_committed_transactions_total {_committedTransactions.Value}\n");

        sb.AppendLine("# HELP kms_initialized Whether the KMS has been initialised (1) or not (0).");
        sb.AppendLine("# TYPE kms_initialized gauge");
        sb.Append(CultureInfo.InvariantCulture, $"kms_initialized {(initialized ? 1 : 0)}\n");
        sb.AppendLine("# HELP kms_sealed Whether the KMS is sealed (1) or unsealed (0).");
        sb.AppendLine("# TYPE kms_sealed gauge");
        sb.Append(CultureInfo.InvariantCulture, $"kms_sealed {(isSealed ? 1 : 0)}\n");
        sb.AppendLine("# HELP kms_unseal_progress Unseal key shares submitted towards the threshold.");
        sb.AppendLine("# TYPE kms_unseal_progress gauge");
        sb.Append(CultureInfo.InvariantCulture, $"kms_unseal_progress {unsealProgress}\n");
        sb.AppendLine("# HELP kms_attest_logins_total Attestation logins, by TEE type and outcome.");
        sb.AppendLine("# TYPE kms_attest_logins_total counter");
        foreach (var ((tee, outcome), counter) in _logins.OrderBy(k => k.Key.Tee, StringComparer.Ordinal).ThenBy(k => k.Key.Outcome, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"kms_attest_logins_total{{tee=\"{tee}\",outcome=\"{outcome}\"}} {counter.Value}\n");
        }

        sb.AppendLine("# HELP kms_attest_challenges_total Attestation challenges, by outcome.");
        sb.AppendLine("# TYPE kms_attest_challenges_total counter");
        foreach (var (outcome, counter) in _challenges.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            sb.Append(CultureInfo.InvariantCulture, $"kms_attest_challenges_total{{outcome=\"{outcome}\"}} {counter.Value}\n");
        }

        sb.AppendLine("# HELP kms_attest_spent_nonces Challenge nonces spent by a login and not yet expired (the set that refuses replays).");
        sb.AppendLine("# TYPE kms_attest_spent_nonces gauge");
        sb.Append(CultureInfo.InvariantCulture, $"kms_attest_spent_nonces {spentNonces}\n");
        return sb.ToString();
    }

    private sealed class Counter
    {
        private long _value;

        public long Value => Interlocked.Read(ref _value);

        public void Increment() => Interlocked.Increment(ref _value);

        public void Add(long amount) => Interlocked.Add(ref _value, amount);
    }

    private sealed class Histogram
    {
        private readonly long[] _counts = new long[Buckets.Length];
        private readonly Lock _lock = new();
        private long _count;
        private double _sum;

        public void Observe(double seconds)
        {
            lock (_lock)
            {
                for (var i = 0; i < Buckets.Length; i++)
                {
                    if (seconds <= Buckets[i])
                    {
                        _counts[i]++;
                    }
                }

                _count++;
                _sum += seconds;
            }
        }

        public void Render(StringBuilder sb, string name, string labels)
        {
            var prefix = labels.Length == 0 ? "" : labels + ",";
            var suffix = labels.Length == 0 ? "" : "{" + labels + "}";
            lock (_lock)
            {
                for (var i = 0; i < Buckets.Length; i++)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{prefix}le=\"{Buckets[i]}\"}} {_counts[i]}\n");
                }

                sb.Append(CultureInfo.InvariantCulture, $"{name}_bucket{{{prefix}le=\"+Inf\"}} {_count}\n");
                sb.Append(CultureInfo.InvariantCulture, $"{name}_sum{suffix} {_sum}\n");
                sb.Append(CultureInfo.InvariantCulture, $"{name}_count{suffix} {_count}\n");
            }
        }
    }
}
