using Morphisms.Kms.Http;

namespace Morphisms.Kms.Tests.Http;

/// <summary>
/// What a standby appends to the active node's address: the request target as the client sent it, never one that
/// could reach into the authority, and always a valid header value. (The HA tests send these over real sockets;
/// an HTTP/2 <c>:path</c> with non-ASCII needs TLS, so its escaping is checked here.)
/// </summary>
public sealed class StandbyRedirectTargetTests
{
    [Theory]
    [InlineData("/v1/secret/data/k%2541%2Fv%25zz?x=%2541&y=a%2Fb")]
    [InlineData("/v1/sys/mounts")]
    [InlineData("/v1/secret/data/a/../b?version=1")]
    public void An_origin_form_target_is_kept_byte_for_byte(string target) =>
        Assert.Equal(target, VaultDispatcher.RedirectTarget(target));

    [Theory]
    [InlineData("http://evil.example:8200/v1/sys/mounts")]
    [InlineData("https://evil.example/v1/secret/data/a")]
    [InlineData("*")]
    [InlineData("evil.example:8200")]
    [InlineData("")]
    [InlineData(null)]
    public void A_target_that_is_not_a_path_is_not_redirected(string? target) =>
        Assert.Null(VaultDispatcher.RedirectTarget(target));

    [Theory]
    [InlineData("/v1/secret/data/é?q=ü", "/v1/secret/data/%C3%A9?q=%C3%BC")]
    [InlineData("/v1/secret/data/a b\u007f", "/v1/secret/data/a%20b%7F")]
    [InlineData("/v1/secret/data/a#b?q=c#d", "/v1/secret/data/a%23b?q=c%23d")]
    [InlineData("/v1/secret/data/\U0001F511", "/v1/secret/data/%F0%9F%94%91")]
    public void What_a_header_cannot_carry_or_would_cut_the_path_short_is_escaped_as_utf8(string target, string expected) =>
        Assert.Equal(expected, VaultDispatcher.RedirectTarget(target));
}
