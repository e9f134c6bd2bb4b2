using System.Security.Cryptography;
using Morphisms.Kms.AutoUnseal;
using Morphisms.Kms.Barrier;

namespace Morphisms.Kms;

/// <summary>
/// Auto-unseal: with <see cref="KmsServerOptions.AutoUnseal"/> set, every unseal (manual or automatic) leaves the
/// root key wrapped by it at <c>core/root-key-auto</c>, and start-up unseals from that. When it no longer unwraps
/// (new measurement, other HSM key) the KMS stays sealed with a clear warning; a manual unseal with the shares
/// then re-wraps under the new key — share holders approve the change.
/// </summary>
internal sealed partial class KmsCore
{
    /// <summary>Unseals from the wrapped root key if auto-unseal is configured and it unwraps; returns why not otherwise.</summary>
    public async Task<string?> TryAutoUnsealAsync(CancellationToken ct)
    {
        if (Options.AutoUnseal is not { } wrapper)
        {
            return "auto-unseal is not configured";
        }

        await _transition.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (!Initialized)
            {
                return "the KMS is not initialised: run sys/init (it auto-unseals afterwards)";
            }

            if (!Sealed)
            {
                return null;
            }

            var wrapped = await _physical.GetAsync(AutoUnsealPaths.WrappedRootKey, ct).ConfigureAwait(false);
            if (wrapped is null)
            {
                return $"no root key wrapped by the {wrapper.Type} seal yet: unseal once with the shares to enable auto-unseal";
            }

            byte[] rootKey;
            try
            {
                rootKey = await wrapper.UnwrapAsync(wrapped, ct).ConfigureAwait(false);
            }
            catch (AutoUnsealException e)
            {
                return $"{wrapper.Type} auto-unseal failed: {e.Message}; unseal with the shares to re-wrap";
            }

            await _closing.ConfigureAwait(false);
            if (Election is not null)
            {
                // HA: the snapshot check, keyring and state load happen when this node becomes active.
                HoldForLeadership(rootKey);
                return null;
            }

            await OpenWithoutHaAsync(rootKey, refreshAutoUnseal: false, ct).ConfigureAwait(false);
            return null;
        }
        finally
        {
            _transition.Release();
        }
    }

    /// <summary>After an unseal: keeps <c>core/root-key-auto</c> current for the configured wrapper.</summary>
    private async Task RefreshAutoUnsealAsync(byte[] rootKey, CancellationToken ct)
    {
        if (Options.AutoUnseal is not { } wrapper)
        {
            return;
        }

        if (await _physical.GetAsync(AutoUnsealPaths.WrappedRootKey, ct).ConfigureAwait(false) is { } existing)
        {
            try
            {
                var current = await wrapper.UnwrapAsync(existing, ct).ConfigureAwait(false);
                var same = CryptographicOperations.FixedTimeEquals(current, rootKey);
                CryptographicOperations.ZeroMemory(current);
                if (same)
                {
                    return;
                }
            }
            catch (AutoUnsealException)
            {
                // Wrapped by another key: the manual unseal that got here authorises re-wrapping.
            }
        }

        byte[] wrapped;
        try
        {
            wrapped = await wrapper.WrapAsync(rootKey, ct).ConfigureAwait(false);
        }
        catch (AutoUnsealException e)
        {
            // The shares opened the KMS; an unreachable HSM (wrong PIN, missing token) must not undo that. The
            // previous wrapped key, if any, stays as it was and the next start says why it cannot auto-unseal.
            await (Options.WarningWriter ?? Console.Error).WriteLineAsync(
                $"WARNING! unsealed with the shares, but the {wrapper.Type} seal could not wrap the root key: {e.Message}; auto-unseal stays off until it can").ConfigureAwait(false);
            return;
        }

        await _physical.PutAsync(AutoUnsealPaths.WrappedRootKey, wrapped, ct).ConfigureAwait(false);
    }
}
