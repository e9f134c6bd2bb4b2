using System.Text;
using System.Text.Json.Nodes;

namespace Morphisms.Agent.Kms;

/// <summary>A successful attest-login.</summary>
/// <param name="Token">The function token (kept in memory only).</param>
/// <param name="LeaseDuration">The token's TTL.</param>
/// <param name="Renewable">Whether renew-self may extend it.</param>
/// <param name="CertificatePem">The certificate the KMS signed for the CSR, or empty until the KMS has a PKI.</param>
/// <param name="CaChainPem">The certificate's CA chain.</param>
/// <param name="Revision">The function revision whose reference values matched.</param>
/// <param name="Measurement">The measurement the KMS attested (hex).</param>
/// <param name="SecretPath">The KV v2 path of the function's bundle when the KMS names it (<c>data.secret_path</c>).</param>
public sealed record LoginResult(
    string Token, TimeSpan LeaseDuration, bool Renewable, string CertificatePem, IReadOnlyList<string> CaChainPem, string? Revision, string? Measurement,
    string? SecretPath = null)
{
    /// <summary>
    /// Parses an attest-login response body. <c>data.secret_path</c> is optional (older KMS versions omit it); when
    /// present it must be a plain relative KV path, because it is spliced into the request URL.
    /// </summary>
    /// <exception cref="InvalidDataException">A field missing, of the wrong type, or a secret path that is not a KV path.</exception>
    public static LoginResult Parse(JsonObject body)
    {
        var auth = body["auth"] as JsonObject ?? throw new InvalidDataException("login response without auth");
        var data = KmsJson.OptionalObject(body["data"], "data");
        var metadata = KmsJson.OptionalObject(auth["metadata"], "auth.metadata");
        var secretPath = KmsJson.OptionalString(data?["secret_path"], "data.secret_path") is { Length: > 0 } text ? text : null;
        if (secretPath is not null && !IsKvPath(secretPath))
        {
            // A malformed answer like any other (the KMS itself registers only KV paths), not a verdict on this
            // instance: a re-attestation logs it and tries again, the app keeps serving; a cold start exits 4.
            throw new InvalidDataException($"the KMS named a secret path that is not a KV path: '{secretPath}'");
        }

        var chain = data?["ca_chain"] switch
        {
            null => [],
            JsonArray list => list.Select((n, i) => KmsJson.OptionalString(n, $"data.ca_chain[{i}]") ?? throw new InvalidDataException($"data.ca_chain[{i}] is null")).ToList(),
            _ => throw new InvalidDataException("data.ca_chain is not an array"),
        };
        var lease = KmsJson.OptionalInteger(auth["lease_duration"], "auth.lease_duration") ?? 0;
        if (lease is < 0 or > 10 * 365 * 86_400L)
        {
            throw new InvalidDataException($"auth.lease_duration {lease} is out of range");
        }

        return new LoginResult(
            KmsJson.OptionalString(auth["client_token"], "auth.client_token") ?? throw new InvalidDataException("login response without auth.client_token"),
            TimeSpan.FromSeconds(lease),
            KmsJson.OptionalBoolean(auth["renewable"], "auth.renewable") ?? false,
            KmsJson.OptionalString(data?["certificate"], "data.certificate") ?? "",
            chain,
            metadata?["revision"]?.ToString(),
            KmsJson.OptionalString(metadata?["measurement"], "auth.metadata.measurement"),
            secretPath);
    }

    // A record's ToString prints every property: the token stays out of log lines, exception messages and debugger
    // displays (Attestation prints this record too), and the rest stays there to debug with.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Token = [redacted], LeaseDuration = ").Append(LeaseDuration).Append(", Renewable = ").Append(Renewable)
            .Append(", CertificatePem = ").Append(CertificatePem).Append(", CaChainPem = ").Append(CaChainPem)
            .Append(", Revision = ").Append(Revision).Append(", Measurement = ").Append(Measurement).Append(", SecretPath = ").Append(SecretPath);
        return true;
    }

    private static bool IsKvPath(string path) =>
        path.Split('/') is var segments && segments.Length >= 2
        && segments.All(s => s.Length > 0 && s != "." && s != ".." && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'));
}

/// <summary>One version of the secret bundle as read from KV v2.</summary>
/// <param name="Version">The KV version.</param>
/// <param name="Data">The version's data object (JSON).</param>
public sealed record KvSecret(int Version, JsonObject Data)
{
    // A JsonObject prints as its JSON, which here is the secret values themselves: keep them out of ToString.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Version = ").Append(Version).Append(", Data = [redacted]");
        return true;
    }
}
