using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Kms.HighAvailability;

/// <summary>The active node as the leader row and the lock table describe it (what a standby redirects to).</summary>
/// <param name="NodeId">The active node's random id (new every process start).</param>
/// <param name="Address">
/// Its advertised API address (<c>--api-addr</c>), or null when the address read back from storage failed
/// authentication (<see cref="Authenticate"/>): a node holds the lock, but a standby must not send clients there.
/// </param>
/// <param name="ActiveSince">When it became active.</param>
/// <param name="Epoch">The leader epoch of its term (<c>kms_ha_leader.epoch</c>).</param>
internal sealed record LeaderRecord(string NodeId, Uri? Address, DateTimeOffset ActiveSince, long Epoch)
{
    /// <summary>
    /// Until when a standby may redirect to <see cref="Address"/>: the authenticated lease the active node renews
    /// (<see cref="PostgresLeaderLock.Lease"/>), by this node's clock. Unbounded for this node's own record.
    /// </summary>
    public DateTimeOffset LeaseUntil { get; init; } = DateTimeOffset.MaxValue;

    /// <summary>Why <see cref="Address"/> is null although a node holds the lock, for the standby's warning; else null.</summary>
    public string? Refusal { get; init; }

    /// <summary>
    /// Whether <paramref name="address"/> is fit to publish and to redirect to: absolute http(s), and nothing but
    /// scheme, host and port (a path of "/" at most; no query, fragment or userinfo).
    /// </summary>
    /// <remarks>
    /// A standby appends the request's path to it, so anything more would send clients elsewhere than the path they
    /// asked for: <c>https://node2:8200/v1/sys/policies/acl/x#</c> turns a redirected policy write into one of
    /// policy <c>x</c>, on a real node (the fragment swallows the rest).
    /// </remarks>
    public static bool IsApiAddress(Uri address) =>
        address.IsAbsoluteUri && address.Scheme is ("http" or "https") && address.AbsolutePath == "/"
            && address.Query.Length == 0 && address.Fragment.Length == 0 && address.UserInfo.Length == 0;

    /// <summary>
    /// The MAC the active node stores beside its leader row (<c>api_addr_mac</c>): HMAC-SHA256 under
    /// <paramref name="key"/> (<see cref="Barrier.RootSubkeys.HaLeader"/>) over the epoch, node id, address and lease
    /// expiry (Unix milliseconds), each length-prefixed or fixed-size so no two rows encode alike. The lease is what
    /// makes a row go stale: without it, a row of an earlier term written back would verify for ever.
    /// </summary>
    public static byte[] Mac(ReadOnlySpan<byte> key, long epoch, string nodeId, string apiAddr, DateTimeOffset leaseUntil)
    {
        var id = Encoding.UTF8.GetBytes(nodeId);
        var address = Encoding.UTF8.GetBytes(apiAddr);
        var message = new byte[8 + 4 + id.Length + 4 + address.Length + 8];
        BinaryPrimitives.WriteInt64BigEndian(message, epoch);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(8), id.Length);
        id.CopyTo(message, 12);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(12 + id.Length), address.Length);
        address.CopyTo(message, 16 + id.Length);
        BinaryPrimitives.WriteInt64BigEndian(message.AsSpan(16 + id.Length + address.Length), leaseUntil.ToUnixTimeMilliseconds());
        return HMACSHA256.HashData(key, message);
    }

    /// <summary>
    /// The <c>api_addr</c> read back from storage, which the KMS does not trust (whoever can write the database can
    /// write it), if an active node wrote it: its <paramref name="mac"/> verifies under <paramref name="key"/> (so
    /// only a node holding this cluster's root key wrote it, for this epoch, node id and lease) and it is only scheme,
    /// host and port (<see cref="IsApiAddress"/>). Null otherwise — an altered row, or one from a KMS version without
    /// the MAC or the lease — so a standby then answers 503 instead of sending clients, their tokens and request
    /// bodies there. Whether the row is fresh (its lease, its epoch) is the caller's to judge:
    /// <see cref="PostgresLeaderLock.ReadLeaderAsync"/>.
    /// </summary>
    public static Uri? Authenticate(ReadOnlySpan<byte> key, long epoch, string nodeId, string stored, DateTimeOffset? leaseUntil, byte[]? mac) =>
        mac is not null && leaseUntil is { } lease && CryptographicOperations.FixedTimeEquals(mac, Mac(key, epoch, nodeId, stored, lease))
            && Uri.TryCreate(stored, UriKind.Absolute, out var address) && IsApiAddress(address)
                ? address
                : null;
}
