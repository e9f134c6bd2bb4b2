using Morphisms.Serving.Hosting;
using Morphisms.Testing;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// A record's compiler-made ToString prints every property, so a record holding a secret would put it in any log line,
/// exception message or debugger display it reaches: each redacts the secret and keeps the rest, and so does a record
/// that holds one of them.
/// </summary>
public sealed class SecretRedactionTests
{
    private const string Marker = Redaction.Marker;

    private static readonly KmsConnection Kms = new() { Url = new Uri("https://kms.test:8200"), CaSha256 = "ab12", Token = Marker };

    // Each case: the instance, the secret it holds, and something it must still print.
    private static readonly Dictionary<string, Func<(object Holder, string Secret, string Kept)>> Cases = new()
    {
        ["KmsConnection"] = () => (Kms, Marker, "Url = https://kms.test:8200/"),
        ["ServingHostOptions holding a KmsConnection"] = () => (new ServingHostOptions { DataDirectory = "/data", Kms = Kms }, Marker, "DataDirectory = /data"),
        ["ControlApiTokens"] = Tokens,
    };

    public static TheoryData<string> Holders => Redaction.Names(Cases);

    // A bearer token is random: its own value is the marker.
    private static (object, string, string) Tokens()
    {
        var tokens = new ControlApiTokens(BearerToken.New(), BearerToken.New());
        return (tokens, tokens.Control.Value, "Control = [bearer token]");
    }

    [Theory]
    [MemberData(nameof(Holders))]
    public void ToString_LeavesTheSecretOut_AndKeepsTheRest(string holder)
    {
        var (instance, secret, kept) = Cases[holder]();
        Redaction.AssertLeftOut(instance, secret, kept);
    }
}
