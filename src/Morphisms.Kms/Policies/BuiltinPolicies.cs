namespace Morphisms.Kms.Policies;

/// <summary>The <c>root</c> and <c>default</c> policies.</summary>
internal static class BuiltinPolicies
{
    /// <summary>The policy that allows everything; it has no rules and cannot be changed or deleted.</summary>
    public const string Root = "root";

    /// <summary>The policy attached to tokens unless <c>no_default_policy</c>; editable, not deletable.</summary>
    public const string Default = "default";

    /// <summary>The text of <c>default</c> written at init: a token may look after itself and nothing else.</summary>
    public const string DefaultText = """
        # Allow tokens to look up their own properties
        path "auth/token/lookup-self" {
            capabilities = ["read"]
        }

        # Allow tokens to renew themselves
        path "auth/token/renew-self" {
            capabilities = ["update"]
        }

        # Allow tokens to revoke themselves
        path "auth/token/revoke-self" {
            capabilities = ["update"]
        }

        # Allow a token to look up its own capabilities on a path
        path "sys/capabilities-self" {
            capabilities = ["update"]
        }
        """;
}
