namespace Morphisms.Agent.Kms;

/// <summary>A successful attest-login.</summary>
/// <param name="Token">The function token (kept in memory only).</param>
/// <param name="LeaseDuration">The token's TTL.</param>
/// <param name="Renewable">Whether renew-self may extend it.</param>
/// <param name="CertificatePem">The certificate the KMS signed for the CSR, or empty until the KMS has a PKI.</param>
/// <param name="CaChainPem">The certificate's CA chain.</param>
/// <param name="Revision">The function revision whose reference values matched.</param>
/// <param name="Measurement">The measurement the KMS attested (hex).</param>
public sealed record LoginResult(
    string Token, TimeSpan LeaseDuration, bool Renewable, string CertificatePem, IReadOnlyList<string> CaChainPem, string? Revision, string? Measurement);

/// <summary>One version of the secret bundle as read from KV v2.</summary>
/// <param name="Version">The KV version.</param>
/// <param name="Data">The version's data object (JSON).</param>
public sealed record KvSecret(int Version, System.Text.Json.Nodes.JsonObject Data);
