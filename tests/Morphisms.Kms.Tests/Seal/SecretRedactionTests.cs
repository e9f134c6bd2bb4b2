using System.Reflection;
using Morphisms.Kms.Audit;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Pki;
using Morphisms.Kms.Seal;
using Morphisms.Kms.Tokens;
using Morphisms.Kms.Transit;
using Morphisms.Testing;

namespace Morphisms.Kms.Tests.Seal;

/// <summary>
/// A record's compiler-made ToString prints every property, so a record holding a token, share or private key would
/// put it in any log line, exception message or debugger display it reaches: each redacts the secret and keeps the
/// rest. A class holding key material prints its type name only.
/// </summary>
public sealed class SecretRedactionTests
{
    private const string Marker = Redaction.Marker;

    // Each case: the instance, and something it must still print. The private records are built by reflection.
    private static readonly Dictionary<string, Func<(object Holder, string Kept)>> Cases = new()
    {
        ["KmsDevCredentials"] = () => (new KmsDevCredentials(Marker, Marker, "/keys.json"), "KeyFile = /keys.json"),
        ["InitResult"] = () => (new InitResult([[1, 2]], Marker), "UnsealFailure = "),
        ["TokenCreateRequest"] = () => (new TokenCreateRequest { Policies = ["p"], CustomId = Marker, DisplayName = "shown" }, "DisplayName = shown"),
        ["KmsRootCa.StoredCa"] = () => (Private(typeof(KmsRootCa), "StoredCa", "CERTIFICATE", Marker), "Certificate = CERTIFICATE"),
        ["CaKeyPool.Entry"] = () => (Private(typeof(CaKeyPool), "Entry", Marker), "Idle = 0"),
        ["DevSeal.DevKeyFile"] = () => (Private(typeof(DevSeal), "DevKeyFile", Marker, Marker), "DevKeyFile {"),
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
    public void KeyHolders_PrintTheirTypeNameOnly()
    {
        object[] holders = [Keyring.Create(DateTimeOffset.UnixEpoch), AuditKeys.Derive(new byte[32]), TransitKey.Create("aes256-gcm96", DateTimeOffset.UnixEpoch)];
        Assert.All(holders, h => Assert.Equal(h.GetType().FullName, h.ToString()));
    }

    private static object Private(Type outer, string name, params object[] arguments) =>
        Activator.CreateInstance(outer.GetNestedType(name, BindingFlags.NonPublic)!, arguments)!;
}
