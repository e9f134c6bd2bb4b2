using System.Security.Cryptography;
using Morphisms.Kms.Http;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Barrier;

/// <summary>
/// The security barrier: every value crossing it is encrypted with the keyring's active term and the key path
/// as associated data. Keys stay plaintext (as in Vault) so the physical store can list by prefix.
/// </summary>
internal sealed class BarrierStorage : ISecureStorage
{
    /// <summary>Where the keyring lives, encrypted under the root key rather than a keyring term.</summary>
    public const string KeyringPath = "core/keyring";

    private readonly IPhysicalStorage _physical;

    // Two rotations computed from the same keyring would both mint term N+1 with different keys; the second put
    // would orphan every value already written under the first. Rotations therefore run one at a time.
    private readonly SemaphoreSlim _rotation = new(1, 1);

    // Writes under way (WriteScope), so a restore can wait for those that began before the wipe (WritesFinishedAsync).
    private readonly Lock _writesLock = new();
    private int _writes;
    private TaskCompletionSource? _writesFinished;
    private Keyring _keyring;
    private volatile bool _wiped;

    /// <summary>
    /// Told of each encryption under the active term with that term's new count (<see cref="Keyring.CountEncryption"/>),
    /// on the request's thread: it must be cheap (<see cref="BarrierKeyRotation"/> only compares and signals).
    /// </summary>
    public Action<long>? EncryptionCounted { get; set; }

    public BarrierStorage(IPhysicalStorage physical, Keyring keyring)
    {
        _physical = physical;
        _keyring = keyring;
    }

    /// <summary>The keyring in use.</summary>
    public Keyring Keyring => Volatile.Read(ref _keyring);

    /// <summary>
    /// Whether <see cref="Wipe"/> has begun. Key users read it after using a key: seen false, the wipe had not
    /// started when the use ended, so the key was still whole; seen true, what they computed may involve zeros.
    /// </summary>
    public bool Wiped
    {
        get
        {
            // The fence keeps the key reads of the use before this read (Wipe fences the other way).
            Interlocked.MemoryBarrier();
            return _wiped;
        }
    }

    /// <summary>Encrypts the keyring under the root key for <see cref="KeyringPath"/>.</summary>
    public static byte[] WrapKeyring(ReadOnlySpan<byte> rootKey, Keyring keyring) => WrapKeyring(rootKey, keyring, new byte[4096]);

    /// <summary>
    /// <see cref="WrapKeyring(ReadOnlySpan{byte}, Keyring)"/> with the plaintext keyring written to
    /// <paramref name="scratch"/> (and larger arrays if it does not fit), all zeroed before returning.
    /// </summary>
    internal static byte[] WrapKeyring(ReadOnlySpan<byte> rootKey, Keyring keyring, byte[] scratch)
    {
        using var plaintext = new SensitiveBufferWriter(scratch);
        keyring.Serialize(plaintext);
        return AesGcmEnvelope.Seal(rootKey, 0, KeyringPath, plaintext.WrittenSpan);
    }

    /// <summary>Decrypts the keyring stored at <see cref="KeyringPath"/>.</summary>
    public static Keyring UnwrapKeyring(ReadOnlySpan<byte> rootKey, ReadOnlySpan<byte> ciphertext) =>
        UnwrapKeyring(rootKey, ciphertext, new byte[Math.Max(0, ciphertext.Length - AesGcmEnvelope.Overhead)]);

    /// <summary>
    /// <see cref="UnwrapKeyring(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/> decrypting into <paramref name="scratch"/>
    /// (at least the plaintext's length), zeroed before returning: only the keyring's own key arrays remain.
    /// </summary>
    internal static Keyring UnwrapKeyring(ReadOnlySpan<byte> rootKey, ReadOnlySpan<byte> ciphertext, byte[] scratch)
    {
        try
        {
            var length = AesGcmEnvelope.Open(rootKey, KeyringPath, ciphertext, scratch);
            return Keyring.Deserialize(scratch.AsSpan(0, length));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scratch);
        }
    }

    /// <summary>
    /// Adds a keyring term and makes it active. The new keyring is durable before it is used, so no ciphertext
    /// is ever written under a term that a restart would not know.
    /// </summary>
    public async Task<Keyring> RotateAsync(byte[] rootKey, DateTimeOffset now, CancellationToken ct) =>
        (await RotateAsync(rootKey, null, now, ct).ConfigureAwait(false))!;

    /// <summary>
    /// <see cref="RotateAsync(byte[], DateTimeOffset, CancellationToken)"/> only while <paramref name="term"/> is still
    /// the active term, else null: an automatic rotation racing another (or <c>sys/rotate</c>) makes one new term, not two.
    /// </summary>
    public Task<Keyring?> RotateFromAsync(byte[] rootKey, uint term, DateTimeOffset now, CancellationToken ct) =>
        RotateAsync(rootKey, term, now, ct);

    private async Task<Keyring?> RotateAsync(byte[] rootKey, uint? onlyFrom, DateTimeOffset now, CancellationToken ct)
    {
        await _rotation.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (onlyFrom is { } term && Keyring.ActiveTerm != term)
            {
                return null;
            }

            using var write = BeginWrite();
            var next = Keyring.Rotate(now);
            var wrapped = WrapKeyring(rootKey, next);
            if (Wiped)
            {
                // A rotation the seal stopped waiting for: its keyring copies wiped terms and may be wrapped under a
                // wiped root key; stored, it would leave the store unopenable and its keys readable from the disk.
                next.Zero();
                throw KmsException.Sealed();
            }

            await _physical.PutAsync(KeyringPath, wrapped, ct).ConfigureAwait(false);
            Volatile.Write(ref _keyring, next);
            if (Wiped)
            {
                // Stored intact, but a wipe running meanwhile may have zeroed the keyring this one replaced and not
                // its new term: zero it here (the next unseal reads it from storage).
                next.Zero();
            }

            return next;
        }
        finally
        {
            _rotation.Release();
        }
    }

    /// <summary>
    /// Zeroes the keyring when the KMS seals. Requests the seal stopped waiting for may still run: every key use
    /// checks <see cref="Wiped"/> afterwards and fails as sealed (503) instead of storing or serving what zeroed
    /// keys made.
    /// </summary>
    public void Wipe()
    {
        _wiped = true;

        // Pairs with the fence in Wiped: no zeroing happens before the flag is visible, and a rotation that
        // installed its keyring without seeing the flag has it zeroed here.
        Interlocked.MemoryBarrier();
        Keyring.Zero();
    }

    /// <summary>
    /// After <see cref="Wipe"/>: completes once every write that began before it has ended. Those still to encrypt
    /// fail as sealed; those past encryption reach storage — a restore waits for them, or they would land in the
    /// restored store, under a keyring it does not have.
    /// </summary>
    public Task WritesFinishedAsync()
    {
        lock (_writesLock)
        {
            return _writes == 0 ? Task.CompletedTask : (_writesFinished ??= new(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    public async Task<byte[]?> GetAsync(string key, CancellationToken ct = default)
    {
        var ciphertext = await _physical.GetAsync(key, ct).ConfigureAwait(false);
        if (ciphertext is null)
        {
            return null;
        }

        var keyring = Keyring;
        try
        {
            return AesGcmEnvelope.Open(keyring.Key(AesGcmEnvelope.ReadTerm(ciphertext)), key, ciphertext);
        }
        catch (BarrierException) when (Wiped)
        {
            // The key was zeroed under this read, the data is fine: the KMS sealed.
            throw KmsException.Sealed();
        }
    }

    public async Task PutAsync(string key, byte[] value, CancellationToken ct = default)
    {
        using var write = BeginWrite();
        await _physical.PutAsync(key, Encrypt(key, value), ct).ConfigureAwait(false);
    }

    public async Task DeleteAsync(string key, CancellationToken ct = default)
    {
        // Refused once wiped like a put: no key use would stop it, and after a restore it would delete restored data.
        using var write = BeginWrite();
        await _physical.DeleteAsync(key, ct).ConfigureAwait(false);
    }

    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default) => _physical.ListAsync(prefix, ct);

    public async Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default)
    {
        using var write = BeginWrite();
        await _physical.TransactAsync(
            [.. operations.Select(op => op.Value is null ? StorageOperation.Delete(op.Key) : StorageOperation.Put(op.Key, Encrypt(op.Key, op.Value)))],
            ct).ConfigureAwait(false);
    }

    /// <summary>Starts a write, to be disposed when it has ended.</summary>
    /// <exception cref="KmsException">503: wiped, so the write began after the seal gave up waiting.</exception>
    private WriteScope BeginWrite()
    {
        lock (_writesLock)
        {
            // Read under the lock: a write counted here is one WritesFinishedAsync (which locks after Wipe) waits for.
            if (_wiped)
            {
                throw KmsException.Sealed();
            }

            _writes++;
            return new WriteScope(this);
        }
    }

    private void EndWrite()
    {
        lock (_writesLock)
        {
            if (--_writes == 0 && _writesFinished is { } finished)
            {
                _writesFinished = null;
                finished.TrySetResult();
            }
        }
    }

    private byte[] Encrypt(string key, byte[] value)
    {
        var keyring = Keyring;
        var ciphertext = AesGcmEnvelope.Seal(keyring.Key(keyring.ActiveTerm), keyring.ActiveTerm, key, value);

        // Counted per keyring object, so an encryption is counted under the term it used even across a rotation.
        var count = keyring.CountEncryption();
        EncryptionCounted?.Invoke(count);

        // Checked after use: a value sealed while the key was being zeroed must never reach storage.
        return Wiped ? throw KmsException.Sealed() : ciphertext;
    }

    /// <summary>One write under way (<see cref="BeginWrite"/>).</summary>
    private readonly struct WriteScope(BarrierStorage barrier) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose() => barrier.EndWrite();
    }
}
