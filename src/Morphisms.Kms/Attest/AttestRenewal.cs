using System.Globalization;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Attest;

/// <summary>
/// What attest-login says about renewing one of its tokens, as Vault sends a renewal to the auth method that issued the
/// token: the function's registration as it is now, not as it was at login, decides. A token whose function is gone,
/// whose revision may no longer log in, or whose policies are no longer the function's is not renewed (400, as Vault's
/// "policies have changed, not renewing"): the instance logs in again, and gets what the registry grants now, or nothing.
/// Otherwise the function's current <c>token_ttl</c> is the default increment and its current <c>token_max_ttl</c>
/// (from the token's creation) caps the renewal, besides the caps the token was created with.
/// </summary>
internal static class AttestRenewal
{
    /// <summary>The limits of renewing <paramref name="entry"/> now, or null when it is not an attest-login token.</summary>
    /// <exception cref="KmsException">400: the registration no longer grants what the token holds.</exception>
    public static async Task<RenewalLimits?> LimitsAsync(FunctionRegistry functions, TokenEntry entry, CancellationToken ct)
    {
        if (entry.Path != AttestBackend.LoginPath)
        {
            return null;
        }

        var name = entry.Meta.GetValueOrDefault(AttestBackend.FunctionMetadataKey) ?? "";
        var function = IsFunctionName(name) ? await functions.GetAsync(name, ct).ConfigureAwait(false) : null;
        if (function is null)
        {
            throw KmsException.BadRequest($"function '{name}' is no longer registered, not renewing");
        }

        var revision = int.TryParse(entry.Meta.GetValueOrDefault(AttestBackend.RevisionMetadataKey), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 0;
        if (!function.ActiveRevisions.Any(r => r.Revision == revision))
        {
            throw KmsException.BadRequest($"revision {revision} of function '{name}' no longer logs in (superseded, retired or replaced), not renewing");
        }

        if (!entry.Policies.Order(StringComparer.Ordinal).SequenceEqual(function.Policies.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal), StringComparer.Ordinal))
        {
            throw KmsException.BadRequest("policies have changed, not renewing");
        }

        return new RenewalLimits(TimeSpan.FromSeconds(function.TokenTtl), entry.CreationTime.AddSeconds(function.TokenMaxTtl));
    }

    private static bool IsFunctionName(string name)
    {
        try
        {
            FunctionRegistry.ValidName(name);
            return true;
        }
        catch (KmsException)
        {
            return false;
        }
    }
}
