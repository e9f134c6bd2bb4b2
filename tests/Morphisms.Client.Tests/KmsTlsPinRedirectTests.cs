using Morphisms.Client.Trust;

namespace Morphisms.Client.Tests;

/// <summary>
/// <see cref="KmsTlsPin.RedirectKeepsRequest"/> against the <c>Location</c> a KMS standby sends: the active node's
/// address and the request target as the client sent it, still escaped. Paths compare as <see cref="Uri"/> normalises
/// them, which is what the client sends on each hop, so the same bytes go to the active node.
/// </summary>
public sealed class KmsTlsPinRedirectTests
{
    private static readonly Uri Target = new("https://kms-2.internal:8200/v1/secret/data/k%2541%2Fv%25zz?x=%2541&y=a%2Fb");

    [Fact]
    public void The_request_target_as_sent_on_another_node_keeps_the_request() =>
        Assert.True(KmsTlsPin.RedirectKeepsRequest(Target, new Uri("https://kms-1.internal:8200" + Target.PathAndQuery)));

    [Theory]
    // The decoded path escaped again ("%2541" as "%41", read as "A" by the active node): another key.
    [InlineData("https://kms-1.internal:8200/v1/secret/data/k%41%2Fv%25zz?x=%2541&y=a%2Fb")]
    // "%2F" decoded: another path.
    [InlineData("https://kms-1.internal:8200/v1/secret/data/k%2541/v%25zz?x=%2541&y=a%2Fb")]
    // The query decoded once.
    [InlineData("https://kms-1.internal:8200/v1/secret/data/k%2541%2Fv%25zz?x=%41&y=a%2Fb")]
    [InlineData("https://kms-1.internal:8200/v1/secret/data/k%2541%2Fv%25zz?x=%2541&y=a%2Fb#")]
    public void A_location_that_decoded_or_added_anything_does_not(string location) =>
        Assert.False(KmsTlsPin.RedirectKeepsRequest(Target, new Uri(location)));
}
