using System.Security.Cryptography;
using Morphisms.Attestation;

namespace Morphisms.Kms.Tests.Updates;

/// <summary>
/// The update tests' function <c>signer</c>, owned by alice, bob and mallory-not with two approvals required, and the
/// tokens that act on it: owners (named by a root token), plain tokens, and a serving host's token.
/// </summary>
internal static class OwnedFunction
{
    /// <summary>A second measurement: the "new code" of an update.</summary>
    public static readonly byte[] NewSnp = SHA384.HashData("morphisms test function signer v2"u8);

    /// <summary>Registers <c>signer</c> (revision 1: <see cref="FunctionInstance.SnpMeasurement"/>) and the owners' policy.</summary>
    public static async Task RegisterAsync(VaultHttp c)
    {
        (await c.PutAsync("sys/policies/acl/signer-read", new { policy = """path "secret/data/signer" { capabilities = ["read"] }""" })).Expect(204);
        (await c.PutAsync("sys/policies/acl/owners", new { policy = """path "morphisms/functions/+/updates*" { capabilities = ["read", "list", "update", "delete"] }""" })).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", new
        {
            owners = new[] { "alice", "bob", "mallory-not" },
            approvals_required = 2,
            policies = new[] { "signer-read" },
            simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement) } },
        })).Expect(200);
    }

    /// <summary>A registration body with only simulated SNP reference values.</summary>
    public static object Values(byte[] snp) => new { simulated = new { snp = new[] { Hex.Of(snp) } } };

    /// <summary>A token naming <paramref name="owner"/> (only a root token can), allowed the update routes.</summary>
    public static async Task<string> OwnerTokenAsync(VaultHttp c, string owner) =>
        (await c.PostAsync("auth/token/create", new { policies = new[] { "owners" }, meta = new { morphisms_owner = owner } })).Expect(200).Auth["client_token"]!.GetValue<string>();

    /// <summary>A token allowed the update routes but naming no owner.</summary>
    public static async Task<string> PlainTokenAsync(VaultHttp c) =>
        (await c.PostAsync("auth/token/create", new { policies = new[] { "owners" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

    /// <summary>
    /// What a serving host holds: sudo on the registry, so it may register and delete functions, but no owner name.
    /// </summary>
    public static async Task<string> HostTokenAsync(VaultHttp c)
    {
        (await c.PutAsync("sys/policies/acl/serving-host", new
        {
            policy = """
                path "morphisms/functions" { capabilities = ["list", "sudo"] }
                path "morphisms/functions/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
                """,
        })).Expect(204);
        return (await c.PostAsync("auth/token/create", new { policies = new[] { "serving-host" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
    }

    /// <summary>Challenge and login as <c>signer</c> with an SNP report of <paramref name="measurement"/>.</summary>
    public static async Task<VaultResult> LoginAsync(VaultHttp c, FunctionInstance instance, byte[] measurement)
    {
        var nonce = await AttestFlow.ChallengeAsync(c);
        return await AttestFlow.LoginAsync(c, "snp", instance.SnpReport(nonce, measurement), nonce, instance.CsrPem);
    }
}
