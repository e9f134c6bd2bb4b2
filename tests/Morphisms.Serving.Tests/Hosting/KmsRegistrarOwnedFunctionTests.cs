using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Revisions;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// Deploying a function whose owners gate its updates: the registrar reports the KMS's pending update instead of a
/// registration, also after the function was removed (the KMS keeps the name for its owners).
/// </summary>
public sealed class KmsRegistrarOwnedFunctionTests(ServingKms kms) : IClassFixture<ServingKms>
{
    [Fact]
    public async Task RedeployingARemovedOwnedFunction_WithOtherCode_IsAProposedUpdate_AndTheApprovedCodeComesBack()
    {
        using var registrar = new KmsRegistrar(kms.Connection, TimeProvider.System);
        var first = await registrar.RegisterAsync([SimRevision("owned", 'a')], CancellationToken.None);
        Assert.Contains("registered 1 simulated", first.Note, StringComparison.Ordinal);
        Assert.False(first.LoginsAwaitApproval);
        using (var owners = await kms.Root.PutAsync("v1/morphisms/functions/owned", JsonContent.Create(new JsonObject
        {
            ["owners"] = new JsonArray("alice", "bob"),
            ["approvals_required"] = 2,
        })))
        {
            owners.EnsureSuccessStatusCode();
        }

        // While registered: new code is an update for the owners.
        var changed = await registrar.RegisterAsync([SimRevision("owned", 'b')], CancellationToken.None);
        Assert.StartsWith("registered as proposed update 1:", changed.Note, StringComparison.Ordinal);
        Assert.True(changed.LoginsAwaitApproval);

        // Removed, then deployed again with new code: still theirs to approve.
        Assert.Contains("keeps the name owned for its owners", await registrar.UnregisterAsync("owned", CancellationToken.None), StringComparison.Ordinal);
        var redeployed = await registrar.RegisterAsync([SimRevision("owned", 'b')], CancellationToken.None);
        Assert.Contains("owned was deleted", redeployed.Note, StringComparison.Ordinal);
        Assert.Contains("proposed update 2:", redeployed.Note, StringComparison.Ordinal);
        Assert.True(redeployed.LoginsAwaitApproval);

        // The code the owners approved registers again at once.
        Assert.Contains("registered 1 simulated", (await registrar.RegisterAsync([SimRevision("owned", 'a')], CancellationToken.None)).Note, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RedeployingAnOwnedFunction_WithAnotherSecretPath_IsAProposedUpdate_AndTheSamePathIsNot()
    {
        using var registrar = new KmsRegistrar(kms.Connection, TimeProvider.System);
        await registrar.RegisterAsync([SimRevision("owned-path", 'e')], CancellationToken.None);
        using (var owners = await kms.Root.PutAsync("v1/morphisms/functions/owned-path", JsonContent.Create(new JsonObject
        {
            ["owners"] = new JsonArray("alice", "bob"),
            ["approvals_required"] = 2,
        })))
        {
            owners.EnsureSuccessStatusCode();
        }

        // The same spec again (every deploy re-sends it): nothing for the owners.
        Assert.Contains("registered 1 simulated", (await registrar.RegisterAsync([SimRevision("owned-path", 'e')], CancellationToken.None)).Note, StringComparison.Ordinal);

        // The same code reading its secrets elsewhere: the path waits for the owners, the code still logs in.
        var movedRegistration = await registrar.RegisterAsync([SimRevision("owned-path", 'e', "secret/data/elsewhere")], CancellationToken.None);
        var moved = movedRegistration.Note;
        Assert.StartsWith("the new secret path secret/data/elsewhere is proposed update 1:", moved, StringComparison.Ordinal);
        Assert.Contains("the KMS names the approved path (secret/data/owned-path)", moved, StringComparison.Ordinal);
        Assert.False(movedRegistration.LoginsAwaitApproval); // the approved code still logs in
        var function = await kms.Root.GetFromJsonAsync<JsonObject>("v1/morphisms/functions/owned-path");
        Assert.Equal("secret/data/owned-path", function!["data"]!["secret_path"]!.GetValue<string>());

        // The approved instances must still read their bundle there: the function's policy keeps the approved path
        // beside the proposed one while the owners decide. (Only the function's attest-login tokens get past the KMS's
        // guard of an owned bundle, so the policy is checked by its capabilities, not by reading with a token made here.)
        using var created = await kms.Root.PostAsync("v1/auth/token/create", JsonContent.Create(new JsonObject { ["policies"] = new JsonArray(KmsRegistrar.PolicyName("owned-path")) }));
        var token = (await created.EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonObject>())!["auth"]!["client_token"]!.GetValue<string>();
        using var capabilities = new HttpRequestMessage(HttpMethod.Post, "v1/sys/capabilities-self")
        {
            Content = JsonContent.Create(new JsonObject { ["paths"] = new JsonArray("secret/data/owned-path", "secret/data/elsewhere") }),
        };
        capabilities.Headers.Add("X-Vault-Token", token);
        using var answer = await kms.Root.SendAsync(capabilities);
        var granted = (await answer.EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonObject>())!["data"]!;
        foreach (var path in new[] { "secret/data/owned-path", "secret/data/elsewhere" })
        {
            Assert.Contains("read", granted[path]!.AsArray().Select(n => n!.GetValue<string>()));
        }
    }

    [Fact]
    public async Task RemovingAFunctionWithoutOwners_SaysNothingMore()
    {
        using var registrar = new KmsRegistrar(kms.Connection, TimeProvider.System);
        await registrar.RegisterAsync([SimRevision("unowned", 'c')], CancellationToken.None);

        Assert.Null(await registrar.UnregisterAsync("unowned", CancellationToken.None));
        Assert.Contains("registered 1 simulated", (await registrar.RegisterAsync([SimRevision("unowned", 'd')], CancellationToken.None)).Note, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AHardwareFunctionWithItsOwnSecretPath_IsToldToRegisterThatPath()
    {
        // Nothing is registered for hardware TEEs here; the note must name the path, which the agent takes from the KMS.
        using var registrar = new KmsRegistrar(kms.Connection, TimeProvider.System);

        var note = (await registrar.RegisterAsync([SimRevision("on-snp", 'f', "secret/data/teams/on-snp", FunctionTee.Snp)], CancellationToken.None)).Note;

        Assert.Contains("with --secret-path secret/data/teams/on-snp", note, StringComparison.Ordinal);
        Assert.DoesNotContain("--secret-path", (await registrar.RegisterAsync([SimRevision("on-snp", 'f', tee: FunctionTee.Snp)], CancellationToken.None)).Note, StringComparison.Ordinal);
    }

    private static Revision SimRevision(string function, char measurement, string? secrets = null, FunctionTee tee = FunctionTee.Sim) => new(
        function + "-00001",
        1,
        new FunctionSpec { Name = function, Tee = tee, Bundle = "/nonexistent", Command = ["./app"], Secrets = secrets },
        [],
        new string(measurement, 96),
        DateTimeOffset.UnixEpoch);
}
