using System.Security.Cryptography;

namespace Morphisms.Kms.Seal;

/// <summary>The unseal key shares submitted so far (in memory only), with Vault's attempt nonce.</summary>
internal sealed class UnsealProgress
{
    private readonly List<byte[]> _parts = [];

    /// <summary>Shares collected.</summary>
    public int Count => _parts.Count;

    /// <summary>The attempt's nonce; empty when no attempt is in progress.</summary>
    public string Nonce { get; private set; } = "";

    /// <summary>The collected shares.</summary>
    public IReadOnlyList<byte[]> Parts => _parts;

    /// <summary>Adds a share; a share already submitted is ignored, as in Vault.</summary>
    public void Add(byte[] part)
    {
        if (_parts.Any(p => CryptographicOperations.FixedTimeEquals(p, part)))
        {
            CryptographicOperations.ZeroMemory(part);
            return;
        }

        if (_parts.Count == 0)
        {
            Nonce = Guid.NewGuid().ToString();
        }

        _parts.Add(part);
    }

    /// <summary>Forgets every share.</summary>
    public void Reset()
    {
        foreach (var p in _parts)
        {
            CryptographicOperations.ZeroMemory(p);
        }

        _parts.Clear();
        Nonce = "";
    }
}
