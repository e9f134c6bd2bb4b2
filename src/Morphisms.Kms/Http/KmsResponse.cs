using System.Text.Json.Nodes;

namespace Morphisms.Kms.Http;

/// <summary>What a handler returns; <see cref="VaultEnvelope"/> turns it into Vault's wire shape.</summary>
internal sealed class KmsResponse
{
    /// <summary>The HTTP status (200 unless set; 204 comes from a null response).</summary>
    public int StatusCode { get; init; } = 200;

    /// <summary>The <c>data</c> object.</summary>
    public JsonObject? Data { get; init; }

    /// <summary>The <c>auth</c> object of token-issuing responses.</summary>
    public JsonObject? Auth { get; init; }

    /// <summary>Non-fatal remarks for the client.</summary>
    public List<string> Warnings { get; } = [];

    /// <summary>A body sent as is instead of the envelope (sys/init, sys/seal-status, sys/health answer bare objects).</summary>
    public JsonObject? RawBody { get; init; }

    /// <summary>Copy <see cref="Data"/>'s fields to the top level too, as Vault's older sys endpoints do (sys/policy, sys/mounts).</summary>
    public bool MergeDataToTopLevel { get; init; }

    /// <summary>The <c>errors</c> array for a non-2xx response carrying data (a read of a deleted KV version).</summary>
    public IReadOnlyList<string>? Errors { get; init; }

    /// <summary>Extra response headers (e.g. Content-Type for metrics).</summary>
    public string? ContentType { get; init; }

    /// <summary>A non-JSON body (Prometheus text).</summary>
    public string? TextBody { get; init; }

    /// <summary>A response with <paramref name="data"/>.</summary>
    public static KmsResponse WithData(JsonObject data) => new() { Data = data };
}
