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

/// <summary>
/// What answers a plain-http loopback KMS address may be anything listening there: its error body, which <c>--json</c>
/// prints, must not carry the token back out, and no HTTP_PROXY may sit between the CLI and a plain-http KMS.
/// </summary>
public sealed class KmsTransportSecrecyTests
{
    private const string Token = "hvs.secret-token-5d0c7e2a91";

    [Fact]
    public async Task An_error_body_echoing_the_request_is_printed_without_the_token()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        var echo = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var buffer = new byte[8192];
            var received = new System.Text.StringBuilder();
            while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer);
                if (read == 0)
                {
                    break;
                }

                received.Append(System.Text.Encoding.ASCII.GetString(buffer, 0, read));
            }

            var echoed = JsonValue.Create(received.ToString()).ToJsonString();
            var body = "{\"errors\":[" + echoed + "],\"request\":" + echoed + "}";
            var answer = $"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {System.Text.Encoding.UTF8.GetByteCount(body)}\r\nConnection: close\r\n\r\n{body}";
            await stream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(answer));
        });

        using var kms = new KmsHttp(new Uri($"http://127.0.0.1:{port}/"), Token, caFile: null);
        var refused = await Assert.ThrowsAsync<KmsCliException>(() => kms.SendAsync("GET", "v1/secret/data/x", null, CancellationToken.None));
        await echo;

        Assert.NotNull(refused.Body);
        Assert.Contains("X-Vault-Token: [redacted]", refused.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, refused.Body, StringComparison.Ordinal);
        Assert.DoesNotContain(Token, refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8200/", false)]
    [InlineData("http://localhost:8200/", false)]
    [InlineData("https://kms.example:8200/", true)]
    public void Plain_http_never_goes_through_a_proxy(string address, bool proxied)
    {
        using var handler = KmsHttp.NewHandler(new Uri(address));
        Assert.Equal(proxied, handler.UseProxy);
        Assert.False(handler.AllowAutoRedirect);
    }
}
