namespace Morphisms.Kms.Policies;

/// <summary>Vault's ACL capabilities.</summary>
[Flags]
internal enum Capability
{
    /// <summary>Nothing granted.</summary>
    None = 0,

    /// <summary>Overrides every other capability on the path.</summary>
    Deny = 1,

    /// <summary>Write to a path that does not exist yet.</summary>
    Create = 2,

    /// <summary>Read.</summary>
    Read = 4,

    /// <summary>Write to an existing path.</summary>
    Update = 8,

    /// <summary>Delete.</summary>
    Delete = 16,

    /// <summary>List children.</summary>
    List = 32,

    /// <summary>Root-protected paths additionally need this.</summary>
    Sudo = 64,

    /// <summary>JSON merge patch.</summary>
    Patch = 128,
}

/// <summary>Capability names and conversions.</summary>
internal static class Capabilities
{
    private static readonly (string Name, Capability Value)[] Names =
    [
        ("create", Capability.Create), ("read", Capability.Read), ("update", Capability.Update), ("delete", Capability.Delete),
        ("list", Capability.List), ("sudo", Capability.Sudo), ("patch", Capability.Patch), ("deny", Capability.Deny),
    ];

    /// <summary>Parses one capability name.</summary>
    public static bool TryParse(string name, out Capability capability)
    {
        foreach (var (n, v) in Names)
        {
            if (n == name)
            {
                capability = v;
                return true;
            }
        }

        capability = Capability.None;
        return false;
    }

    /// <summary>The names of the capabilities in <paramref name="capabilities"/>; <c>deny</c> when nothing is granted.</summary>
    public static List<string> ToNames(Capability capabilities)
    {
        if (capabilities == Capability.None || capabilities.HasFlag(Capability.Deny))
        {
            return ["deny"];
        }

        return [.. Names.Where(n => n.Value != Capability.Deny && capabilities.HasFlag(n.Value)).Select(n => n.Name)];
    }

    /// <summary>The capability an operation needs.</summary>
    public static Capability For(Http.Operation operation) => operation switch
    {
        Http.Operation.Read => Capability.Read,
        Http.Operation.List => Capability.List,
        Http.Operation.Create => Capability.Create,
        Http.Operation.Update => Capability.Update,
        Http.Operation.Delete => Capability.Delete,
        Http.Operation.Patch => Capability.Patch,
        _ => Capability.Deny,
    };

    /// <summary>What Vault's legacy <c>policy = "..."</c> shorthand grants.</summary>
    public static Capability? FromLegacy(string policy) => policy switch
    {
        "deny" => Capability.Deny,
        "read" => Capability.Read | Capability.List,
        "write" => Capability.Create | Capability.Read | Capability.Update | Capability.Delete | Capability.List | Capability.Patch,
        "sudo" => Capability.Create | Capability.Read | Capability.Update | Capability.Delete | Capability.List | Capability.Patch | Capability.Sudo,
        _ => null,
    };
}
