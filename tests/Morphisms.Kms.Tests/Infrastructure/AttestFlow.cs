using Morphisms.Attestation;

namespace Morphisms.Kms.Tests;

/// <summary>The agent's side of attest-login against a test KMS.</summary>
public static class AttestFlow
{
    /// <summary>The registration most tests use: simulated SNP and SGX measurements of <see cref="FunctionInstance"/>.</summary>
    public static object SignerRegistration(string[]? policies = null) => new
    {
        owners = new[] { "alice@example.com" },
        policies = policies ?? ["signer-read"],
        secret_path = "secret/data/signer",
        simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) }, sgx = new[] { Hex.Of(FunctionInstance.SgxMeasurement) } },
    };

    /// <summary>Registers <c>signer</c> and the policy its tokens get.</summary>
    public static async Task RegisterSignerAsync(VaultHttp client)
    {
        (await client.PutAsync("sys/policies/acl/signer-read", new { policy = """path "secret/data/signer" { capabilities = ["read"] }""" })).Expect(204);
        (await client.PutAsync("morphisms/functions/signer", SignerRegistration())).Expect(200);
    }

    /// <summary>Asks for a challenge nonce.</summary>
    public static async Task<byte[]> ChallengeAsync(VaultHttp client, string function = "signer")
    {
        var data = (await client.PostAsync("auth/attest/challenge", new { function }, token: "")).Expect(200).Data;
        return Convert.FromBase64String(data["nonce"]!.GetValue<string>());
    }

    /// <summary>Posts a login without a token.</summary>
    public static Task<VaultResult> LoginAsync(VaultHttp client, string tee, byte[] evidence, byte[] nonce, string csr, string function = "signer", byte[]? endorsements = null) =>
        client.SendAsync("POST", "auth/attest/login", new Dictionary<string, object?>
        {
            ["function"] = function,
            ["tee"] = tee,
            ["evidence"] = Convert.ToBase64String(evidence),
            ["nonce"] = Convert.ToBase64String(nonce),
            ["csr"] = csr,
            ["endorsements"] = endorsements is null ? null : Convert.ToBase64String(endorsements),
        }, token: "");
}
