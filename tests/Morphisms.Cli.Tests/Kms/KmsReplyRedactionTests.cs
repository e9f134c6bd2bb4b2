using System.Text.Json.Nodes;
using Morphisms.Cli.Commands.Kms;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// A record's compiler-made ToString prints every property, a JsonObject as its JSON: a KMS reply's body may hold a
/// token, unseal keys or secret values, so its ToString shows the status only.
/// </summary>
public sealed class KmsReplyRedactionTests
{
    private const string Marker = "marker-secret-7c41e09b";

    [Fact]
    public void ToString_LeavesTheBodyOut_AndKeepsTheStatus()
    {
        var body = new JsonObject { ["auth"] = new JsonObject { ["client_token"] = Marker } };
        var text = new KmsReply(200, body, body.ToJsonString()).ToString();
        Assert.DoesNotContain(Marker, text, StringComparison.Ordinal);
        Assert.Contains("Status = 200", text, StringComparison.Ordinal);
    }
}
