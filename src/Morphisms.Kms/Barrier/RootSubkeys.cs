using System.Security.Cryptography;
using System.Text;

namespace Morphisms.Kms.Barrier;

/// <summary>Keys derived from the root key for one purpose each, so no purpose can be turned against another.</summary>
internal static class RootSubkeys
{
    /// <summary>Authenticates storage snapshots (<c>sys/storage/snapshot</c>).</summary>
    public const string Snapshot = "morphisms/kms/snapshot/v1";

    /// <summary>Authenticates the active node's leader row in PostgreSQL (<c>kms_ha_leader.api_addr_mac</c>), which standbys redirect to.</summary>
    public const string HaLeader = "morphisms/kms/ha-leader/v1";

    /// <summary>HKDF-SHA256(root key, info = <paramref name="purpose"/>), 32 bytes.</summary>
    public static byte[] Derive(ReadOnlySpan<byte> rootKey, string purpose)
    {
        // The span overload: the byte[] one would need a copy of the root key that nothing zeroes.
        var key = new byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, rootKey, key, salt: [], info: Encoding.UTF8.GetBytes(purpose));
        return key;
    }
}
