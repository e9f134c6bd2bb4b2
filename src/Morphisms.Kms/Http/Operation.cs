namespace Morphisms.Kms.Http;

/// <summary>Vault's logical operations; HTTP methods map onto these and ACL capabilities are checked against them.</summary>
internal enum Operation
{
    /// <summary>GET.</summary>
    Read,

    /// <summary>LIST, or GET with <c>?list=true</c>.</summary>
    List,

    /// <summary>POST/PUT on a path whose resource does not exist yet.</summary>
    Create,

    /// <summary>POST/PUT on an existing resource (or a path without an existence check).</summary>
    Update,

    /// <summary>DELETE.</summary>
    Delete,

    /// <summary>PATCH (JSON merge patch).</summary>
    Patch,
}

/// <summary>Lower-case names as Vault prints them in errors and the audit log.</summary>
internal static class OperationNames
{
    public static string Name(this Operation op) => op switch
    {
        Operation.Read => "read",
        Operation.List => "list",
        Operation.Create => "create",
        Operation.Update => "update",
        Operation.Delete => "delete",
        Operation.Patch => "patch",
        _ => "unknown",
    };
}
