using System.Text.Json.Nodes;
using Morphisms.Agent.Identity;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Secrets;
using Morphisms.Testing;

namespace Morphisms.Agent.Tests.Kms;

/// <summary>
/// A record's compiler-made ToString prints every property (a JsonObject as its JSON), so a record holding a secret
/// would put it in any log line, exception message or debugger display it reaches: each redacts the secret and keeps
/// the rest, and so does a record that holds one of them. A class holding key material prints its type name only.
/// </summary>
public sealed class SecretRedactionTests
{
    private const string Marker = Redaction.Marker;

    // Each case: the instance, and something it must still print.
    private static readonly Dictionary<string, Func<(object Holder, string Kept)>> Cases = new()
    {
        ["LoginResult"] = () => (Login(), "Revision = 2"),
        ["Attestation holding a LoginResult"] = AttestationHolder,
        ["KvSecret"] = () => (new KvSecret(3, Bundle()), "Version = 3"),
        ["SecretBundle"] = () => (SecretBundle.Parse(3, Bundle()), "Version = 3"),
        ["AgentOptions"] = () => (new AgentOptions { Kms = new Uri("https://kms.test:8200"), Function = "fn", App = ["app"], ReportToken = Marker }, "Function = fn"),
    };

    public static TheoryData<string> Holders => Redaction.Names(Cases);

    [Theory]
    [MemberData(nameof(Holders))]
    public void ToString_LeavesTheSecretOut_AndKeepsTheRest(string holder)
    {
        var (instance, kept) = Cases[holder]();
        Redaction.AssertLeftOut(instance, Marker, kept);
    }

    [Fact]
    public void TheInstanceKey_PrintsItsTypeNameOnly()
    {
        using var identity = new InstanceIdentity("fn");
        Assert.Equal(typeof(InstanceIdentity).FullName, identity.ToString());
    }

    private static LoginResult Login() => new(Marker, TimeSpan.FromMinutes(5), true, "", [], "2", "ab");

    private static JsonObject Bundle() => new()
    {
        ["env"] = new JsonObject { ["API_KEY"] = Marker },
        ["files"] = new JsonObject { ["key.pem"] = Marker },
    };

    private static (object, string) AttestationHolder()
    {
        var identity = new InstanceIdentity("fn");
        var login = Login();
        return (new global::Morphisms.Agent.Lifecycle.Attestation(identity, login, identity.Certificate(login, TimeProvider.System), "snp", true, DateTimeOffset.UnixEpoch), "Tee = snp");
    }
}
