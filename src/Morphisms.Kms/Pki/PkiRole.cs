using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Pki;

/// <summary>A PKI role (<c>roles/NAME</c>): which names a certificate may carry, for how long, with which key.</summary>
internal sealed class PkiRole
{
    /// <summary>Default TTL when neither request nor role says (Vault's system default is 32 days; shorter is safer).</summary>
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromDays(30);

    private static readonly string[] Known =
    [
        "allowed_domains", "allow_subdomains", "allow_bare_domains", "allow_localhost", "allow_any_name", "allow_ip_sans",
        "enforce_hostnames", "ttl", "max_ttl", "key_type", "key_bits", "server_flag", "client_flag",
    ];

    /// <summary>Domains names must be (or be under).</summary>
    public List<string> AllowedDomains { get; set; } = [];

    /// <summary>Names below an allowed domain are allowed.</summary>
    public bool AllowSubdomains { get; set; }

    /// <summary>The allowed domain itself is allowed.</summary>
    public bool AllowBareDomains { get; set; }

    /// <summary><c>localhost</c> is allowed.</summary>
    public bool AllowLocalhost { get; set; }

    /// <summary>Any name is allowed.</summary>
    public bool AllowAnyName { get; set; }

    /// <summary>IP SANs are allowed.</summary>
    public bool AllowIpSans { get; set; }

    /// <summary>Names must be valid host names.</summary>
    public bool EnforceHostnames { get; set; } = true;

    /// <summary>TTL in seconds (0: default).</summary>
    public long Ttl { get; set; }

    /// <summary>Maximum TTL in seconds (0: none beyond the issuer).</summary>
    public long MaxTtl { get; set; }

    /// <summary><c>ec</c> or <c>rsa</c>.</summary>
    public string KeyType { get; set; } = "ec";

    /// <summary>256/384 for EC, 2048/3072/4096 for RSA.</summary>
    public int KeyBits { get; set; } = 256;

    /// <summary>TLS server usage.</summary>
    public bool ServerFlag { get; set; } = true;

    /// <summary>TLS client usage.</summary>
    public bool ClientFlag { get; set; } = true;

    /// <summary>Applies a role write; unknown or ill-typed parameters are 400s naming the field.</summary>
    public static PkiRole Parse(Fields f, PkiRole? existing)
    {
        var role = existing ?? new PkiRole();
        role.AllowedDomains = f.StringList("allowed_domains") ?? role.AllowedDomains;
        role.AllowSubdomains = f.Bool("allow_subdomains") ?? role.AllowSubdomains;
        role.AllowBareDomains = f.Bool("allow_bare_domains") ?? role.AllowBareDomains;
        role.AllowLocalhost = f.Bool("allow_localhost") ?? role.AllowLocalhost;
        role.AllowAnyName = f.Bool("allow_any_name") ?? role.AllowAnyName;
        role.AllowIpSans = f.Bool("allow_ip_sans") ?? role.AllowIpSans;
        role.EnforceHostnames = f.Bool("enforce_hostnames") ?? role.EnforceHostnames;
        role.Ttl = (long?)f.Duration("ttl")?.TotalSeconds ?? role.Ttl;
        role.MaxTtl = (long?)f.Duration("max_ttl")?.TotalSeconds ?? role.MaxTtl;
        var keyTypeGiven = f.Has("key_type");
        role.KeyType = f.String("key_type") ?? role.KeyType;
        var bits = f.NonNegativeInt("key_bits");
        role.ServerFlag = f.Bool("server_flag") ?? role.ServerFlag;
        role.ClientFlag = f.Bool("client_flag") ?? role.ClientFlag;
        RejectUnknown(f, Known);

        if (role.KeyType is not ("ec" or "rsa"))
        {
            throw KmsException.BadRequest("invalid 'key_type': use \"ec\" or \"rsa\"");
        }

        role.KeyBits = bits is null or 0 ? (keyTypeGiven || existing is null ? DefaultBits(role.KeyType) : role.KeyBits) : (int)bits;
        if (role.KeyType == "ec" ? role.KeyBits is not (256 or 384) : role.KeyBits is not (2048 or 3072 or 4096))
        {
            throw KmsException.BadRequest($"invalid 'key_bits' {role.KeyBits.ToString(CultureInfo.InvariantCulture)} for key_type {role.KeyType}: use 256 or 384 for ec, 2048, 3072 or 4096 for rsa");
        }

        if (role.MaxTtl > 0 && role.Ttl > role.MaxTtl)
        {
            throw KmsException.BadRequest("invalid 'ttl': it exceeds 'max_ttl'");
        }

        foreach (var domain in role.AllowedDomains)
        {
            if (!IsHostname(domain))
            {
                throw KmsException.BadRequest($"invalid 'allowed_domains': \"{Printable(domain)}\" is not a DNS name");
            }
        }

        if (!role.ServerFlag && !role.ClientFlag)
        {
            throw KmsException.BadRequest("invalid 'server_flag'/'client_flag': a role must allow server or client use");
        }

        return role;
    }

    /// <summary>The role's JSON for reads.</summary>
    public JsonObject ToJson() => new()
    {
        ["allowed_domains"] = JsonValues.Strings(AllowedDomains),
        ["allow_subdomains"] = AllowSubdomains,
        ["allow_bare_domains"] = AllowBareDomains,
        ["allow_localhost"] = AllowLocalhost,
        ["allow_any_name"] = AllowAnyName,
        ["allow_ip_sans"] = AllowIpSans,
        ["enforce_hostnames"] = EnforceHostnames,
        ["ttl"] = Ttl,
        ["max_ttl"] = MaxTtl,
        ["key_type"] = KeyType,
        ["key_bits"] = KeyBits,
        ["server_flag"] = ServerFlag,
        ["client_flag"] = ClientFlag,
    };

    /// <summary>Throws a 400 naming the first DNS name the role does not allow.</summary>
    public void CheckNames(IEnumerable<string> names, string field)
    {
        foreach (var name in names)
        {
            if (!Allows(name))
            {
                throw KmsException.BadRequest($"invalid '{field}': the role does not allow \"{Printable(name)}\"");
            }
        }
    }

    /// <summary>Throws a 400 when IP SANs are asked for but not allowed.</summary>
    public void CheckIps(IReadOnlyList<IPAddress> ips)
    {
        if (ips.Count > 0 && !AllowIpSans)
        {
            throw KmsException.BadRequest("invalid 'ip_sans': the role does not allow IP SANs");
        }
    }

    /// <summary>
    /// The validity for a request asking for <paramref name="requested"/>, capped at the role's <c>max_ttl</c> as Vault
    /// caps it: a longer request (cert-manager asks for 90 days by default) gets <c>max_ttl</c> and a
    /// <paramref name="warning"/> saying so, not a refusal.
    /// </summary>
    public TimeSpan Validity(TimeSpan? requested, out string? warning)
    {
        warning = null;
        var ttl = requested ?? (Ttl > 0 ? TimeSpan.FromSeconds(Ttl) : DefaultTtl);
        if (MaxTtl > 0 && ttl > TimeSpan.FromSeconds(MaxTtl))
        {
            if (requested is not null)
            {
                warning = $"TTL \"{Http.Durations.ToGoString(ttl)}\" is longer than permitted maxTTL \"{Http.Durations.ToGoString(TimeSpan.FromSeconds(MaxTtl))}\", so maxTTL is being used";
            }

            ttl = TimeSpan.FromSeconds(MaxTtl);
        }

        return ttl;
    }

    /// <summary>Whether a DNS-style name is a valid host name (letters, digits, hyphens; optional leading <c>*.</c>).</summary>
    public static bool IsHostname(string name)
    {
        var n = name.StartsWith("*.", StringComparison.Ordinal) ? name[2..] : name;
        return n.Length is > 0 and <= 253 && n.Split('.').All(l =>
            l.Length is > 0 and <= 63 && l[0] != '-' && l[^1] != '-' && l.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'));
    }

    /// <summary>Rejects parameters outside <paramref name="known"/> (strict: a typo must not silently widen a role).</summary>
    public static void RejectUnknown(Fields f, IEnumerable<string> known)
    {
        foreach (var k in known)
        {
            f.Has(k);
        }

        if (f.Unused.FirstOrDefault() is { } unknown)
        {
            throw KmsException.BadRequest($"unknown parameter '{Printable(unknown)}'");
        }
    }

    /// <summary>Client text cut and stripped of control characters before it goes into an error.</summary>
    public static string Printable(string text) => new([.. text.Take(80).Where(c => !char.IsControl(c))]);

    private static int DefaultBits(string keyType) => keyType == "rsa" ? 2048 : 256;

    private bool Allows(string name)
    {
        var lower = name.ToLowerInvariant();
        if (EnforceHostnames && !IsHostname(lower))
        {
            return false;
        }

        if (AllowAnyName || (AllowLocalhost && lower == "localhost"))
        {
            return true;
        }

        foreach (var domain in AllowedDomains.Select(d => d.ToLowerInvariant()))
        {
            if ((AllowBareDomains && lower == domain) || (AllowSubdomains && lower.EndsWith("." + domain, StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }
}
