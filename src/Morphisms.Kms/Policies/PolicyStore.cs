using System.Collections.Concurrent;
using System.Text;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Policies;

/// <summary>ACL policies under the barrier at <c>sys/policy/NAME</c>, parsed once and cached.</summary>
internal sealed class PolicyStore(ISecureStorage storage)
{
    private const string Prefix = "sys/policy/";
    private static readonly Policy RootPolicy = new(BuiltinPolicies.Root, "", []);
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly ConcurrentDictionary<string, Policy> _cache = new(StringComparer.Ordinal);

    // Writes are serialised so the cache ends in the order storage did; a read fills the cache only if no write happened
    // since it began, or it could put back a policy a concurrent write just replaced or deleted (until the next seal).
    private readonly SemaphoreSlim _writes = new(1, 1);
    private readonly Lock _gate = new();
    private long _generation;

    /// <summary>The storage write that creates the default policy at init.</summary>
    public static (string Key, byte[] Value) DefaultPolicyRecord() =>
        (Prefix + BuiltinPolicies.Default, SecureStorageJson.ToJson(new StoredPolicy(BuiltinPolicies.Default, BuiltinPolicies.DefaultText)));

    /// <summary>Normalises and validates a policy name (lower-case; letters, digits and <c>-_./@+=</c>).</summary>
    public static string NormalizeName(string name)
    {
        var n = name.Trim().ToLowerInvariant();
        if (n.Length == 0 || n.Length > 128 || n.Split('/').Any(s => s is "" or "." or "..")
            || !n.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or '@' or '+' or '='))
        {
            throw KmsException.BadRequest("invalid policy name: use 1-128 letters, digits and -_./@+=");
        }

        return n;
    }

    /// <summary>The policy named <paramref name="name"/>, or null.</summary>
    public async Task<Policy?> GetAsync(string name, CancellationToken ct)
    {
        if (name == BuiltinPolicies.Root)
        {
            return RootPolicy;
        }

        if (_cache.TryGetValue(name, out var cached))
        {
            return cached;
        }

        var generation = Interlocked.Read(ref _generation);
        var stored = await storage.GetJsonAsync<StoredPolicy>(Prefix + name, ct).ConfigureAwait(false);
        if (stored is null)
        {
            return null;
        }

        var policy = PolicyParser.Parse(stored.Name, stored.Policy);
        lock (_gate)
        {
            if (_generation == generation)
            {
                _cache.TryAdd(name, policy);
            }
        }

        return policy;
    }

    /// <summary>Every policy name, including <c>root</c>.</summary>
    public async Task<List<string>> ListAsync(CancellationToken ct)
    {
        var names = await storage.ListRecursiveAsync(Prefix, ct).ConfigureAwait(false);
        names.Add(BuiltinPolicies.Root);
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <summary>Parses and stores a policy (decoded first when it is base64, as Vault does; see <see cref="DecodeIfBase64"/>).</summary>
    /// <exception cref="KmsException">The name is reserved or the text does not parse (400).</exception>
    public async Task PutAsync(string name, string text, CancellationToken ct)
    {
        if (name == BuiltinPolicies.Root)
        {
            throw KmsException.BadRequest("cannot update \"root\" policy");
        }

        text = DecodeIfBase64(text);

        Policy policy;
        try
        {
            policy = PolicyParser.Parse(name, text);
        }
        catch (PolicyParseException e)
        {
            throw KmsException.BadRequest($"failed to parse policy: {e.Message}");
        }

        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await storage.PutJsonAsync(Prefix + name, new StoredPolicy(name, text), ct).ConfigureAwait(false);
            Changed(name, policy);
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// The policy a client sent, as Vault reads it: Vault first tries Go's standard base64 decoding and, when that
    /// succeeds, stores the decoded text, so clients may send a policy encoded. Here the value must be wholly standard
    /// base64 (padded; line breaks ignored, as Go's decoder ignores them) and decode to valid UTF-8; anything else is
    /// the policy itself. No policy text is valid base64 (its blocks need quotes and braces), so none is misread.
    /// </summary>
    public static string DecodeIfBase64(string text)
    {
        var compact = text.Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal);
        var unpadded = compact.TrimEnd('=');
        if (compact.Length == 0 || compact.Length % 4 != 0 || compact.Length - unpadded.Length > 2
            || !unpadded.All(c => char.IsAsciiLetterOrDigit(c) || c is '+' or '/'))
        {
            return text;
        }

        var bytes = new byte[compact.Length / 4 * 3];
        if (!Convert.TryFromBase64String(compact, bytes, out var written))
        {
            return text;
        }

        try
        {
            return StrictUtf8.GetString(bytes, 0, written);
        }
        catch (DecoderFallbackException)
        {
            return text;
        }
    }

    /// <summary>Deletes a policy; <c>root</c> and <c>default</c> cannot be deleted.</summary>
    public async Task DeleteAsync(string name, CancellationToken ct)
    {
        if (name is BuiltinPolicies.Root or BuiltinPolicies.Default)
        {
            throw KmsException.BadRequest($"cannot delete \"{name}\" policy");
        }

        await _writes.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await storage.DeleteAsync(Prefix + name, ct).ConfigureAwait(false);
            Changed(name, null);
        }
        finally
        {
            _writes.Release();
        }
    }

    private void Changed(string name, Policy? policy)
    {
        lock (_gate)
        {
            _generation++;
            if (policy is null)
            {
                _cache.TryRemove(name, out _);
            }
            else
            {
                _cache[name] = policy;
            }
        }
    }

    /// <summary>The ACL of a set of policy names; names that no longer exist grant nothing.</summary>
    public async Task<Acl> AclAsync(IEnumerable<string> names, CancellationToken ct)
    {
        var policies = new List<Policy>();
        foreach (var name in names)
        {
            if (await GetAsync(name, ct).ConfigureAwait(false) is { } p)
            {
                policies.Add(p);
            }
        }

        return new Acl(policies);
    }

    private sealed record StoredPolicy(string Name, string Policy);
}
