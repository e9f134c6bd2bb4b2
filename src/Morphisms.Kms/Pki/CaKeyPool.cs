using System.Collections.Concurrent;
using System.Text;

namespace Morphisms.Kms.Pki;

/// <summary>
/// Issuing keys kept loaded between signatures, one per concurrent signer. Importing a P-384 key (which re-derives and
/// checks its public point) cost more than the signature itself, a quarter of an attest-login's CPU. The pool belongs
/// to the mount's backend, which lives in the unsealed state: sealing or stepping down drops it with the keyring that
/// could decrypt these keys anyway, and the KMS root CA's key is already held the same way.
/// </summary>
internal sealed class CaKeyPool : IDisposable
{
    private readonly ConcurrentDictionary<string, Entry> _byIssuer = new(StringComparer.Ordinal);

    /// <summary>A loaded key for <paramref name="issuer"/>; give it back with <see cref="Return"/>.</summary>
    public CaKey Rent(IssuerRecord issuer)
    {
        var entry = _byIssuer.AddOrUpdate(
            issuer.Id,
            _ => new Entry(issuer.PrivateKey),
            (_, existing) => existing.Pem == issuer.PrivateKey ? existing : new Entry(issuer.PrivateKey));
        return entry.Idle.TryTake(out var key) ? key : CaKey.FromPem(issuer.Id, issuer.Certificate, issuer.PrivateKey);
    }

    /// <summary>Returns a key rented for <paramref name="issuer"/>, or disposes it when that issuer's key changed meanwhile.</summary>
    public void Return(IssuerRecord issuer, CaKey key)
    {
        if (_byIssuer.TryGetValue(issuer.Id, out var entry) && entry.Pem == issuer.PrivateKey && entry.Idle.Count < Environment.ProcessorCount * 2)
        {
            entry.Idle.Add(key);
            return;
        }

        key.Dispose();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var entry in _byIssuer.Values)
        {
            while (entry.Idle.TryTake(out var key))
            {
                key.Dispose();
            }
        }

        _byIssuer.Clear();
    }

    private sealed record Entry(string Pem)
    {
        public ConcurrentBag<CaKey> Idle { get; } = [];

        // A record's ToString prints every property: the issuer's private key (the PEM) stays out of it.
        private bool PrintMembers(StringBuilder builder)
        {
            builder.Append("Pem = [redacted], Idle = ").Append(Idle.Count);
            return true;
        }
    }
}
