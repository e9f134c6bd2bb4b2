using Morphisms.Kms.HighAvailability;

namespace Morphisms.Kms.Tests.HighAvailability;

/// <summary>
/// Which API addresses a node publishes and a standby redirects to: scheme, host and port only, since the standby
/// appends the request's path and <c>api_addr</c> comes back from storage the KMS does not trust.
/// </summary>
public sealed class LeaderRecordTests
{
    [Theory]
    [InlineData("https://kms-1.internal:8200")]
    [InlineData("https://kms-1.internal:8200/")]
    [InlineData("http://127.0.0.1:8200")]
    [InlineData("https://[2001:db8::1]:8200/")]
    public void An_address_of_scheme_host_and_port_is_used(string stored)
    {
        Assert.True(LeaderRecord.IsApiAddress(new Uri(stored)));
        Assert.Equal(new Uri(stored), LeaderRecord.ParseStoredApiAddress(stored));
    }

    [Theory]
    [InlineData("https://node2:8200/v1/sys/policies/acl/x#")]
    [InlineData("https://node2:8200/v1/sys/policies/acl/x")]
    [InlineData("https://node2:8200/kms")]
    [InlineData("https://node2:8200//")]
    [InlineData("https://node2:8200/#")]
    [InlineData("https://node2:8200/?x=1")]
    [InlineData("https://node2:8200/?")]
    [InlineData("https://user:pass@node2:8200/")]
    [InlineData("ftp://node2:8200/")]
    [InlineData("")]
    [InlineData("node2:8200")]
    public void An_address_with_more_is_refused_and_reads_back_as_no_active_node(string stored)
    {
        Assert.Null(LeaderRecord.ParseStoredApiAddress(stored));
        if (Uri.TryCreate(stored, UriKind.Absolute, out var address))
        {
            Assert.False(LeaderRecord.IsApiAddress(address));
        }
    }
}
