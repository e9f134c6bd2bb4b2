using System.Text.Json.Nodes;

namespace Morphisms.Agent.Telemetry;

/// <summary>
/// Times the cold-start phases with the injected clock, and emits them as one structured log event and, optionally,
/// a POST to the serving layer. The phases run one after another (launch, pin, [app_spawn], keygen, challenge,
/// evidence, login, certificate, secrets, terminator, app_ready), so they add up to nearly the total: what is left is
/// logging and bookkeeping between them.
/// </summary>
public sealed class ColdStartReport(TimeProvider time)
{
    private readonly long _start = time.GetTimestamp();
    private readonly List<(string Phase, double Ms)> _phases = [];

    /// <summary>The phases recorded so far, in order.</summary>
    public IReadOnlyList<(string Phase, double Ms)> Phases => _phases;

    /// <summary>Runs and times one phase.</summary>
    public async Task<T> TimeAsync<T>(string phase, Func<Task<T>> action)
    {
        var started = time.GetTimestamp();
        var result = await action().ConfigureAwait(false);
        _phases.Add((phase, time.GetElapsedTime(started).TotalMilliseconds));
        return result;
    }

    /// <summary>Times a synchronous phase.</summary>
    public T Time<T>(string phase, Func<T> action)
    {
        var started = time.GetTimestamp();
        var result = action();
        _phases.Add((phase, time.GetElapsedTime(started).TotalMilliseconds));
        return result;
    }

    /// <summary>The report as JSON.</summary>
    public JsonObject ToJson(string function, string tee, bool simulated, bool issuedCertificate)
    {
        var phases = new JsonObject();
        foreach (var (phase, ms) in _phases)
        {
            // A phase run more than once (a login round started again after a transient failure) counts in full.
            phases[phase] = Math.Round(ms + (phases[phase]?.GetValue<double>() ?? 0), 2);
        }

        return new JsonObject
        {
            ["function"] = function,
            ["tee"] = tee,
            ["simulated"] = simulated,
            ["certificate"] = issuedCertificate ? "kms-issued" : "self-signed (the KMS issued none)",
            ["phases_ms"] = phases,
            ["total_ms"] = Math.Round(time.GetElapsedTime(_start).TotalMilliseconds, 2),
        };
    }

    /// <summary>
    /// POSTs the report with <paramref name="token"/> as its bearer token, when there is one (best effort: the serving
    /// layer is untrusted and the report holds no secrets; the token opens this instance's report route and no other).
    /// </summary>
    public static async Task PostAsync(Uri url, string? token, JsonObject report, AgentLog log, CancellationToken ct)
    {
        try
        {
            // Straight to the host, never through an inherited HTTP_PROXY: the request carries the report token.
            using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(5) };
            // Serialised by the JSON DOM itself: no reflection-based serializer (trimming/NativeAOT friendly, less JIT).
            using var request = new HttpRequestMessage(HttpMethod.Post, url)
            {
                Content = new StringContent(report.ToJsonString(), System.Text.Encoding.UTF8, "application/json"),
            };
            if (token is not null)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            }

            using var response = await http.SendAsync(request, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                log.Warn("cold_start_report", $"report POST to {url} answered {(int)response.StatusCode}");
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            log.Warn("cold_start_report", $"report POST to {url} failed: {e.Message}");
        }
    }
}
