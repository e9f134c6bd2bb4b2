using Morphisms.Kms.Http;

namespace Morphisms.Kms.Policies;

/// <summary>
/// The merged rules of a token's policies. Capabilities of the same pattern in several policies are unioned
/// (with <c>deny</c> winning); for a request path the single most specific matching pattern decides, ranked
/// as Vault ranks them: exact beats wildcards; a later first wildcard beats an earlier one; no trailing
/// <c>*</c> beats one; fewer <c>+</c> segments win; then the longer, then the lexicographically larger pattern.
/// </summary>
internal sealed class Acl
{
    private readonly Dictionary<string, Capability> _rules = new(StringComparer.Ordinal);

    public Acl(IEnumerable<Policy> policies)
    {
        foreach (var policy in policies)
        {
            if (policy.Name == BuiltinPolicies.Root)
            {
                IsRoot = true;
                continue;
            }

            foreach (var rule in policy.Rules)
            {
                var caps = _rules.GetValueOrDefault(rule.Pattern) | rule.Capabilities;
                _rules[rule.Pattern] = caps.HasFlag(Capability.Deny) ? Capability.Deny : caps;
            }
        }
    }

    /// <summary>Whether the root policy is among the token's policies: everything is allowed.</summary>
    public bool IsRoot { get; }

    /// <summary>The capabilities granted on <paramref name="path"/> (the root policy grants all).</summary>
    public Capability CapabilitiesOn(string path, bool isList = false)
    {
        if (IsRoot)
        {
            return (Capability)0xFE;
        }

        string? best = null;
        foreach (var pattern in _rules.Keys)
        {
            var matches = Matches(pattern, path) || (isList && path.EndsWith('/') && pattern == path[..^1]);
            if (matches && (best is null || Compare(pattern, best) > 0))
            {
                best = pattern;
            }
        }

        if (best is null)
        {
            return Capability.None;
        }

        var caps = _rules[best];
        return caps.HasFlag(Capability.Deny) ? Capability.None : caps;
    }

    /// <summary>Whether <paramref name="operation"/> on <paramref name="path"/> is allowed (with sudo when <paramref name="sudo"/>).</summary>
    public bool Allows(Operation operation, string path, bool sudo = false)
    {
        if (IsRoot)
        {
            return true;
        }

        var caps = CapabilitiesOn(path, operation == Operation.List);
        var needed = Capabilities.For(operation) | (sudo ? Capability.Sudo : Capability.None);
        return (caps & needed) == needed;
    }

    /// <summary>
    /// Whether the token may learn about the mount at <paramref name="mountPath"/> (ending in <c>/</c>), as Vault's
    /// <c>hasMountAccess</c> decides for <c>sys/internal/ui/mounts</c>: a capability on the mount path itself, or a rule
    /// other than <c>deny</c> on some path under it.
    /// </summary>
    public bool HasMountAccess(string mountPath)
    {
        if (IsRoot || CapabilitiesOn(mountPath) != Capability.None)
        {
            return true;
        }

        return _rules.Any(r => r.Value != Capability.Deny && r.Value != Capability.None && ReachesUnder(r.Key, mountPath));
    }

    /// <summary>Whether <paramref name="pattern"/> can match some path under <paramref name="mountPath"/> (which ends in <c>/</c>).</summary>
    private static bool ReachesUnder(string pattern, string mountPath)
    {
        // Patterns that start inside the mount (Vault walks these by prefix); broader globs such as "*" were answered
        // by CapabilitiesOn(mountPath), where a more specific deny on the mount still wins.
        if (pattern.StartsWith(mountPath, StringComparison.Ordinal))
        {
            return true;
        }

        if (!pattern.Contains('+'))
        {
            return false;
        }

        // "+" segments: the pattern's leading segments must fit the mount's, and it must go on below the mount.
        var glob = pattern.EndsWith('*');
        var ps = (glob ? pattern[..^1] : pattern).Split('/');
        var ms = mountPath[..^1].Split('/');
        for (var i = 0; i < ms.Length; i++)
        {
            if (i >= ps.Length)
            {
                return false;
            }

            var last = i == ps.Length - 1;
            if (glob && last)
            {
                return ps[i] == "+" || ms[i].StartsWith(ps[i], StringComparison.Ordinal);
            }

            if (ps[i] != "+" && ps[i] != ms[i])
            {
                return false;
            }
        }

        return ps.Length > ms.Length;
    }

    /// <summary>Whether <paramref name="pattern"/> matches <paramref name="path"/>.</summary>
    internal static bool Matches(string pattern, string path)
    {
        var glob = pattern.EndsWith('*');
        var p = glob ? pattern[..^1] : pattern;
        if (!p.Contains('+'))
        {
            return glob ? path.StartsWith(p, StringComparison.Ordinal) : path == p;
        }

        var ps = p.Split('/');
        var xs = path.Split('/');
        if (glob ? xs.Length < ps.Length : xs.Length != ps.Length)
        {
            return false;
        }

        for (var i = 0; i < ps.Length; i++)
        {
            var last = i == ps.Length - 1;
            if (ps[i] == "+")
            {
                continue;
            }

            var ok = glob && last ? xs[i].StartsWith(ps[i], StringComparison.Ordinal) : xs[i] == ps[i];
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Positive when <paramref name="a"/> has priority over <paramref name="b"/>.</summary>
    internal static int Compare(string a, string b)
    {
        var fa = FirstWildcard(a);
        var fb = FirstWildcard(b);
        if (fa != fb)
        {
            return fa.CompareTo(fb);
        }

        var ga = a.EndsWith('*');
        var gb = b.EndsWith('*');
        if (ga != gb)
        {
            return ga ? -1 : 1;
        }

        var pa = a.Count(c => c == '+');
        var pb = b.Count(c => c == '+');
        if (pa != pb)
        {
            return pb.CompareTo(pa);
        }

        return a.Length != b.Length ? a.Length.CompareTo(b.Length) : string.CompareOrdinal(a, b);
    }

    private static int FirstWildcard(string pattern)
    {
        var i = pattern.IndexOfAny(['+', '*']);
        return i < 0 ? int.MaxValue : i;
    }
}
