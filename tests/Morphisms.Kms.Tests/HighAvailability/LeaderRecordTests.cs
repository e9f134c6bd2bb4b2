using Morphisms.Kms.HighAvailability;

namespace Morphisms.Kms.Tests.HighAvailability;

/// <summary>
/// Which API addresses a node publishes and a standby redirects to: scheme, host and port only, since the standby
/// appends the request's path, and only with a MAC under the cluster's key over it and its lease, since
/// <c>api_addr</c> comes back from storage the KMS does not trust.
/// </summary>
public sealed class LeaderRecordTests
{
    private static readonly byte[] Key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
    private static readonly DateTimeOffset Lease = new(2026, 11, 22, 12, 0, 15, TimeSpan.Zero);

    [Theory]
    [InlineData("https://kms-1.internal:8200")]
    [InlineData("https://kms-1.internal:8200/")]
    [InlineData("http://127.0.0.1:8200")]
    [InlineData("https://[2001:db8::1]:8200/")]
    public void An_address_of_scheme_host_and_port_is_used(string stored)
    {
        Assert.True(LeaderRecord.IsApiAddress(new Uri(stored)));
        Assert.Equal(new Uri(stored), LeaderRecord.Authenticate(Key, 3, "node", stored, Lease, LeaderRecord.Mac(Key, 3, "node", stored, Lease)));
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
    public void An_address_with_more_is_refused_and_reads_back_as_no_address_even_with_a_valid_mac(string stored)
    {
        Assert.Null(LeaderRecord.Authenticate(Key, 3, "node", stored, Lease, LeaderRecord.Mac(Key, 3, "node", stored, Lease)));
        if (Uri.TryCreate(stored, UriKind.Absolute, out var address))
        {
            Assert.False(LeaderRecord.IsApiAddress(address));
        }
    }

    [Fact]
    public void An_address_whose_mac_does_not_verify_reads_back_as_no_address()
    {
        const string Stored = "https://kms-1.internal:8200";
        var mac = LeaderRecord.Mac(Key, 3, "node", Stored, Lease);
        var otherKey = Key.Select(b => (byte)(b ^ 1)).ToArray();

        Assert.Equal(new Uri(Stored), LeaderRecord.Authenticate(Key, 3, "node", Stored, Lease, mac));
        Assert.Null(LeaderRecord.Authenticate(Key, 3, "node", "https://evil.example:8200", Lease, mac));
        Assert.Null(LeaderRecord.Authenticate(Key, 4, "node", Stored, Lease, mac));
        Assert.Null(LeaderRecord.Authenticate(Key, 3, "other", Stored, Lease, mac));
        Assert.Null(LeaderRecord.Authenticate(Key, 3, "node", Stored, Lease.AddMilliseconds(1), mac));
        Assert.Null(LeaderRecord.Authenticate(otherKey, 3, "node", Stored, Lease, mac));
        Assert.Null(LeaderRecord.Authenticate(Key, 3, "node", Stored, Lease, null));
        Assert.Null(LeaderRecord.Authenticate(Key, 3, "node", Stored, Lease, mac[..16]));

        // A row without a lease (an earlier version's, whose MAC covers no lease) never verifies.
        Assert.Null(LeaderRecord.Authenticate(Key, 3, "node", Stored, null, mac));

        // Length-prefixed fields: moving bytes from the node id into the address changes the MAC.
        Assert.NotEqual(mac, LeaderRecord.Mac(Key, 3, "nodeh", "ttps://kms-1.internal:8200", Lease));
    }
}
