using System.Security.Cryptography;
using System.Text;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace Morphisms.Kms.AutoUnseal;

/// <summary>
/// Auto-unseal through a PKCS#11 HSM: the root key is encrypted with CKM_AES_GCM under an AES-256 key that lives
/// in the token (<c>CKA_SENSITIVE</c>, not extractable), so the KMS host never holds the wrapping key. Wrapped
/// form: <c>0x01 ‖ IV (12) ‖ ciphertext ‖ tag (16)</c>, associated data = the storage path. The key is created
/// the first time something is wrapped and no key with the label exists; unwrapping never creates one, so a key
/// deleted from the HSM leaves the KMS sealed with a clear reason instead of silently minting a useless key.
/// </summary>
public sealed class Pkcs11RootKeyWrapper : IRootKeyWrapper
{
    private const byte Version = 1;
    private const int IvBytes = 12;
    private const int TagBits = 128;

    // PKCS#11 modules are initialised once per process (C_Initialize/C_Finalize are process-wide), so two wrappers
    // in one process must not load, use and finalize the same module concurrently.
    private static readonly SemaphoreSlim ModuleGate = new(1, 1);
    private static readonly byte[] Aad = Encoding.UTF8.GetBytes("morphisms/kms/pkcs11-seal/v1|" + AutoUnsealPaths.WrappedRootKey);
    private readonly Pkcs11SealOptions _options;

    /// <summary>Checks the options; the module is only loaded when a key is wrapped or unwrapped.</summary>
    /// <exception cref="ArgumentException">The options are incomplete or contradictory.</exception>
    public Pkcs11RootKeyWrapper(Pkcs11SealOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Problem() is { } problem)
        {
            throw new ArgumentException(problem, nameof(options));
        }

        _options = options;
    }

    /// <inheritdoc />
    public string Type => "pkcs11";

    /// <inheritdoc />
    public Task<byte[]> WrapAsync(ReadOnlyMemory<byte> rootKey, CancellationToken cancellationToken) =>
        RunAsync(createKey: true, (factories, session, key) =>
        {
            var iv = RandomNumberGenerator.GetBytes(IvBytes);
            var mechanism = Gcm(factories, iv);

            // Pkcs11Interop takes arrays only: the root key's copy is zeroed once the token has it.
            var plaintext = rootKey.ToArray();
            try
            {
                var sealedKey = session.Encrypt(mechanism, key, plaintext);
                return [Version, .. iv, .. sealedKey];
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }
        }, cancellationToken);

    /// <inheritdoc />
    public Task<byte[]> UnwrapAsync(ReadOnlyMemory<byte> wrapped, CancellationToken cancellationToken)
    {
        var bytes = wrapped.ToArray();
        if (bytes.Length < 1 + IvBytes + (TagBits / 8) || bytes[0] != Version)
        {
            throw new AutoUnsealException("the stored wrapped root key is not in the PKCS#11 seal's format");
        }

        return RunAsync(createKey: false, (factories, session, key) =>
        {
            try
            {
                return session.Decrypt(Gcm(factories, bytes[1..(1 + IvBytes)]), key, bytes[(1 + IvBytes)..]);
            }
            catch (Pkcs11Exception e) when (e.RV is CKR.CKR_ENCRYPTED_DATA_INVALID or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_GENERAL_ERROR or CKR.CKR_FUNCTION_FAILED)
            {
                throw new AutoUnsealException($"the HSM key '{_options.KeyLabel}' does not unwrap the root key ({e.RV}): it is not the key that wrapped it");
            }
        }, cancellationToken);
    }

    private static IMechanism Gcm(Pkcs11InteropFactories factories, byte[] iv) =>
        factories.MechanismFactory.Create(CKM.CKM_AES_GCM, factories.MechanismParamsFactory.CreateCkGcmParams(iv, (ulong)iv.Length * 8, Aad, TagBits));

    private async Task<byte[]> RunAsync(bool createKey, Func<Pkcs11InteropFactories, ISession, IObjectHandle, byte[]> operation, CancellationToken ct)
    {
        var pin = _options.ReadPin();
        await ModuleGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            // PKCS#11 calls block; keep them off the caller's thread.
            return await Task.Run(() => Run(pin, createKey, operation), ct).ConfigureAwait(false);
        }
        finally
        {
            ModuleGate.Release();
        }
    }

    private byte[] Run(string pin, bool createKey, Func<Pkcs11InteropFactories, ISession, IObjectHandle, byte[]> operation)
    {
        Pkcs11Native.EnsureResolver();
        var factories = new Pkcs11InteropFactories();
        var step = "loading the PKCS#11 library " + _options.LibraryPath;
        try
        {
            using var library = factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, _options.LibraryPath, AppType.MultiThreaded);
            step = "finding the token";
            var slot = FindSlot(library);
            step = "opening a session";
            using var session = slot.OpenSession(SessionType.ReadWrite);
            step = $"logging in to token {TokenName}";
            session.Login(CKU.CKU_USER, pin);
            try
            {
                step = $"finding the key '{_options.KeyLabel}'";
                var key = FindKey(factories, session) ?? (createKey
                    ? GenerateKey(factories, session)
                    : throw new AutoUnsealException($"no AES key labelled '{_options.KeyLabel}' on token {TokenName}: it was deleted or this is another token"));
                step = "using the key with CKM_AES_GCM";
                return operation(factories, session, key);
            }
            finally
            {
                session.Logout();
            }
        }
        catch (Pkcs11Exception e) when (e.RV is CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_LEN_RANGE or CKR.CKR_PIN_INVALID)
        {
            throw new AutoUnsealException($"login to PKCS#11 token {TokenName} refused the PIN ({e.RV}): check the PIN variable or file");
        }
        catch (Pkcs11Exception e) when (e.RV == CKR.CKR_PIN_LOCKED)
        {
            throw new AutoUnsealException($"the user PIN of PKCS#11 token {TokenName} is locked ({e.RV})");
        }
        catch (Pkcs11Exception e)
        {
            throw new AutoUnsealException($"PKCS#11 failed while {step}: {e.RV}");
        }
        catch (Exception e) when (e is UnmanagedException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            throw new AutoUnsealException($"PKCS#11 failed while {step}: {e.Message}");
        }
    }

    private string TokenName => _options.TokenLabel is { } label ? $"'{label}'" : $"in slot {_options.SlotId}";

    private ISlot FindSlot(IPkcs11Library library)
    {
        foreach (var slot in library.GetSlotList(SlotsType.WithTokenPresent))
        {
            if (_options.SlotId is { } id ? slot.SlotId == id : slot.GetTokenInfo().Label.TrimEnd() == _options.TokenLabel)
            {
                return slot;
            }
        }

        throw new AutoUnsealException($"no PKCS#11 token {TokenName} is present in {_options.LibraryPath}");
    }

    private IObjectHandle? FindKey(Pkcs11InteropFactories factories, ISession session)
    {
        var a = factories.ObjectAttributeFactory;
        var found = session.FindAllObjects(
        [
            a.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            a.Create(CKA.CKA_LABEL, _options.KeyLabel),
        ]);
        return found.Count switch
        {
            0 => null,
            1 => found[0],
            _ => throw new AutoUnsealException($"{found.Count} AES keys are labelled '{_options.KeyLabel}' on token {TokenName}: the label must name one key"),
        };
    }

    private IObjectHandle GenerateKey(Pkcs11InteropFactories factories, ISession session)
    {
        var a = factories.ObjectAttributeFactory;
        return session.GenerateKey(factories.MechanismFactory.Create(CKM.CKM_AES_KEY_GEN),
        [
            a.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            a.Create(CKA.CKA_KEY_TYPE, CKK.CKK_AES),
            a.Create(CKA.CKA_VALUE_LEN, 32UL),
            a.Create(CKA.CKA_LABEL, _options.KeyLabel),
            a.Create(CKA.CKA_TOKEN, true),
            a.Create(CKA.CKA_PRIVATE, true),
            a.Create(CKA.CKA_SENSITIVE, true),
            a.Create(CKA.CKA_EXTRACTABLE, false),
            a.Create(CKA.CKA_ENCRYPT, true),
            a.Create(CKA.CKA_DECRYPT, true),
            a.Create(CKA.CKA_WRAP, false),
            a.Create(CKA.CKA_UNWRAP, false),
        ]);
    }
}
