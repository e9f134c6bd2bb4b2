using Morphisms.Kms.Http;
using Morphisms.Kms.Policies;

namespace Morphisms.Kms.Functions;

/// <summary>
/// A validated registry write. Every property is null when the request did not set it, so an update keeps what
/// it does not mention; <see cref="ReferenceValues"/> is null when no TEE section (<c>snp</c>, <c>sgx</c>,
/// <c>tdx</c>, <c>simulated</c>) was given.
/// </summary>
internal sealed record FunctionSpec
{
    private static readonly string[] Writable = ["owners", "approvals_required", "policies", "token_ttl", "token_max_ttl", "secret_path", "snp", "sgx", "tdx", "simulated"];
    private static readonly string[] ReadOnly = ["name", "revisions", "current_revision", "created_time", "updated_time", "pending_updates", "deleted_time", "former_secret_paths"];

    /// <summary>Owners.</summary>
    public List<string>? Owners { get; init; }

    /// <summary>M of the M-of-N owner approval of updates.</summary>
    public int? ApprovalsRequired { get; init; }

    /// <summary>Policies for login tokens.</summary>
    public List<string>? Policies { get; init; }

    /// <summary>Login token TTL.</summary>
    public TimeSpan? TokenTtl { get; init; }

    /// <summary>Login token max TTL.</summary>
    public TimeSpan? TokenMaxTtl { get; init; }

    /// <summary>KV path of the secret bundle.</summary>
    public string? SecretPath { get; init; }

    /// <summary>New reference values, or null to keep the current ones.</summary>
    public ReferenceValues? ReferenceValues { get; init; }

    /// <summary>Validates a request body; every problem is a 400 naming the parameter.</summary>
    public static FunctionSpec Parse(Fields f)
    {
        var data = f.Data;
        foreach (var (key, _) in data)
        {
            if (ReadOnly.Contains(key, StringComparer.Ordinal))
            {
                throw KmsException.BadRequest($"parameter '{key}' is read-only");
            }
        }

        var root = new StrictObject(data, "");
        root.RejectUnknown(Writable);
        foreach (var key in Writable)
        {
            // Marks the nested sections as read, so the pipeline does not warn that they were ignored.
            _ = f.Has(key);
        }

        var hasReference = root.Has("snp") || root.Has("sgx") || root.Has("tdx") || root.Has("simulated");
        return new FunctionSpec
        {
            Owners = OwnerNames(f.StringList("owners")),
            ApprovalsRequired = f.NonNegativeInt("approvals_required", 32) is { } m ? (int)m : null,
            Policies = PolicyNames(f.StringList("policies")),
            TokenTtl = PositiveDuration(f, "token_ttl"),
            TokenMaxTtl = PositiveDuration(f, "token_max_ttl"),
            SecretPath = f.String("secret_path") is { } path ? SecretPathOf(path) : null,
            ReferenceValues = hasReference ? ReferenceValuesParser.Parse(root) : null,
        };
    }

    private static List<string>? OwnerNames(List<string>? owners)
    {
        if (owners is null)
        {
            return null;
        }

        if (owners.Count > 32)
        {
            throw StrictObject.Invalid("owners", "at most 32 owners");
        }

        for (var i = 0; i < owners.Count; i++)
        {
            if (owners[i].Length is 0 or > 128 || owners[i].Any(char.IsControl))
            {
                throw StrictObject.Invalid($"owners[{i}]", "1-128 printable characters");
            }
        }

        return [.. owners.Distinct(StringComparer.Ordinal)];
    }

    private static List<string>? PolicyNames(List<string>? policies)
    {
        if (policies is null)
        {
            return null;
        }

        if (policies.Count > 64)
        {
            throw StrictObject.Invalid("policies", "at most 64 policy names");
        }

        var names = new List<string>();
        for (var i = 0; i < policies.Count; i++)
        {
            string name;
            try
            {
                name = PolicyStore.NormalizeName(policies[i]);
            }
            catch (KmsException)
            {
                throw StrictObject.Invalid($"policies[{i}]", "a policy name of 1-128 letters, digits and -_./@+=");
            }

            // A function token gets exactly what the registration names: never everything, never the implicit set.
            if (name is BuiltinPolicies.Root or BuiltinPolicies.Default)
            {
                throw StrictObject.Invalid($"policies[{i}]", $"a policy other than '{name}': function tokens never carry root or default");
            }

            if (!names.Contains(name, StringComparer.Ordinal))
            {
                names.Add(name);
            }
        }

        names.Sort(StringComparer.Ordinal);
        return names;
    }

    private static TimeSpan? PositiveDuration(Fields f, string name)
    {
        var value = f.Duration(name);
        return value is { } v && v <= TimeSpan.Zero ? throw StrictObject.Invalid(name, "a duration greater than zero") : value;
    }

    private static string SecretPathOf(string path)
    {
        // At least a mount and a name: the agent reads the bundle with KV's API under a mount and refuses a KMS that
        // names a path of one segment, so a registration with one would start no instance.
        var p = path.Trim('/');
        var segments = p.Split('/');
        if (p.Length is 0 or > 512 || segments.Length < 2 || segments.Any(s => s is "" or "." or "..")
            || !p.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/'))
        {
            throw StrictObject.Invalid("secret_path", "a KV path such as secret/data/NAME (letters, digits, '-', '_', '.', '/' segments)");
        }

        return p;
    }
}
