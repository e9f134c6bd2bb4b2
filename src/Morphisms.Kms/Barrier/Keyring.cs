using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Morphisms.Kms.Barrier;

/// <summary>
/// The versioned data-encryption keys of the barrier. New writes use <see cref="ActiveTerm"/>; older terms stay
/// so existing ciphertexts keep decrypting after a rotation (Vault's <c>sys/rotate</c>).
/// </summary>
internal sealed class Keyring
{
    private readonly Dictionary<uint, KeyTerm> _terms;

    // Encryptions under ActiveTerm by this keyring object. A rotation makes a new keyring, so the count is per term.
    private long _encryptions;

    private Keyring(Dictionary<uint, KeyTerm> terms, uint activeTerm)
    {
        _terms = terms;
        ActiveTerm = activeTerm;
    }

    /// <summary>The term used for new ciphertexts.</summary>
    public uint ActiveTerm { get; }

    /// <summary>
    /// Encryptions counted under <see cref="ActiveTerm"/>: those of this process plus what it assumed at load
    /// (<see cref="AssumeEncryptions"/>). NIST SP 800-38D allows 2^32 random-nonce AES-GCM encryptions per key.
    /// </summary>
    public long Encryptions => Interlocked.Read(ref _encryptions);

    /// <summary>Every term with its install time.</summary>
    public IEnumerable<KeyTerm> Terms => _terms.Values.OrderBy(t => t.Term);

    /// <summary>A fresh keyring with term 1.</summary>
    public static Keyring Create(DateTimeOffset now) =>
        new(new() { [1] = new KeyTerm(1, RandomNumberGenerator.GetBytes(32), now) }, 1);

    /// <summary>The key of <paramref name="term"/>.</summary>
    /// <exception cref="BarrierException">The term is unknown.</exception>
    public byte[] Key(uint term) =>
        _terms.TryGetValue(term, out var t) ? t.Key : throw new BarrierException($"no keyring term {term}");

    /// <summary>Counts one encryption under <see cref="ActiveTerm"/>; returns the new count.</summary>
    public long CountEncryption() => Interlocked.Increment(ref _encryptions);

    /// <summary>Adds encryptions made under <see cref="ActiveTerm"/> before this keyring was loaded (persisted, plus a margin).</summary>
    public void AssumeEncryptions(long count) => Interlocked.Add(ref _encryptions, count);

    /// <summary>A new keyring with one more term, which becomes active (its count starts at zero).</summary>
    public Keyring Rotate(DateTimeOffset now)
    {
        var next = ActiveTerm + 1;
        var terms = new Dictionary<uint, KeyTerm>(_terms) { [next] = new KeyTerm(next, RandomNumberGenerator.GetBytes(32), now) };
        return new Keyring(terms, next);
    }

    /// <summary>
    /// Writes the serialised keyring (encrypted under the root key before it is stored) to <paramref name="output"/>.
    /// It goes straight there: <c>SerializeToUtf8Bytes</c> would leave the keys in pooled buffers no one zeroes.
    /// </summary>
    public void Serialize(IBufferWriter<byte> output)
    {
        using var writer = new Utf8JsonWriter(output);
        JsonSerializer.Serialize(writer, new KeyringDocument(ActiveTerm, [.. Terms.Select(t => new KeyringDocumentTerm(t.Term, t.Key, t.InstallTime))]));
    }

    /// <summary>Reads a keyring written by <see cref="Serialize"/>.</summary>
    public static Keyring Deserialize(ReadOnlySpan<byte> json)
    {
        var doc = JsonSerializer.Deserialize<KeyringDocument>(json) ?? throw new BarrierException("keyring is empty");
        var terms = doc.Terms.ToDictionary(t => t.Term, t => new KeyTerm(t.Term, t.Key, t.InstallTime));
        if (!terms.ContainsKey(doc.ActiveTerm) || terms.Values.Any(t => t.Key.Length != 32))
        {
            throw new BarrierException("keyring is inconsistent");
        }

        return new Keyring(terms, doc.ActiveTerm);
    }

    /// <summary>Overwrites every key in memory; used when the KMS seals.</summary>
    public void Zero()
    {
        foreach (var t in _terms.Values)
        {
            CryptographicOperations.ZeroMemory(t.Key);
        }
    }

    private sealed record KeyringDocument(
        [property: JsonPropertyName("active_term")] uint ActiveTerm,
        [property: JsonPropertyName("terms")] KeyringDocumentTerm[] Terms);

    private sealed record KeyringDocumentTerm(
        [property: JsonPropertyName("term")] uint Term,
        [property: JsonPropertyName("key")] byte[] Key,
        [property: JsonPropertyName("install_time")] DateTimeOffset InstallTime);
}

/// <summary>One keyring term.</summary>
/// <param name="Term">The term number written in each ciphertext header.</param>
/// <param name="Key">The AES-256 key.</param>
/// <param name="InstallTime">When the term was created.</param>
internal sealed record KeyTerm(uint Term, byte[] Key, DateTimeOffset InstallTime);
