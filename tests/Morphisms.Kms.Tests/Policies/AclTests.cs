using Morphisms.Kms.Http;
using Morphisms.Kms.Policies;

namespace Morphisms.Kms.Tests.Policies;

public class AclTests
{
    private static Acl Acl(params string[] texts) => new(texts.Select((t, i) => PolicyParser.Parse("p" + i, t)));

    [Theory]
    [InlineData("secret/*", "secret/foo", true)]
    [InlineData("secret/*", "secret/", true)]
    [InlineData("secret/*", "secret", false)]
    [InlineData("secret/fo*", "secret/foo/bar", true)]
    [InlineData("secret/+/data", "secret/team/data", true)]
    [InlineData("secret/+/data", "secret/team/x/data", false)]
    [InlineData("secret/+/data/*", "secret/team/data/a/b", true)]
    [InlineData("secret/+/data/*", "secret/team/other/a", false)]
    [InlineData("+/data/+", "kv/data/x", true)]
    [InlineData("+/data/+", "kv/data/x/y", false)]
    [InlineData("secret/foo", "secret/foo", true)]
    [InlineData("secret/foo", "secret/foo/", false)]
    public void Patterns_match_as_in_vault(string pattern, string path, bool matches) =>
        Assert.Equal(matches, Morphisms.Kms.Policies.Acl.Matches(pattern, path));

    [Fact]
    public void Exact_beats_glob_and_later_wildcard_beats_earlier()
    {
        var acl = Acl("""
            path "secret/*" { capabilities = ["read"] }
            path "secret/data/*" { capabilities = ["list"] }
            path "secret/data/exact" { capabilities = ["delete"] }
            path "secret/+/admin" { capabilities = ["update"] }
            """);

        Assert.Equal(Capability.Delete, acl.CapabilitiesOn("secret/data/exact"));
        Assert.Equal(Capability.List, acl.CapabilitiesOn("secret/data/other"));
        Assert.Equal(Capability.Read, acl.CapabilitiesOn("secret/x"));

        // First wildcard at index 7 in both; "secret/+/admin" has no trailing glob, so it wins over "secret/*".
        Assert.Equal(Capability.Update, acl.CapabilitiesOn("secret/team/admin"));

        // "secret/data/*" has its first wildcard later (12) than "secret/+/admin" (7).
        Assert.Equal(Capability.List, acl.CapabilitiesOn("secret/data/admin"));
    }

    [Fact]
    public void Fewer_segment_wildcards_then_longer_then_lexicographically_larger_win()
    {
        var acl = Acl("""
            path "a/+/+/d" { capabilities = ["read"] }
            path "a/+/c/d" { capabilities = ["list"] }
            path "x/ab*" { capabilities = ["read"] }
            path "x/abc*" { capabilities = ["list"] }
            """);
        Assert.Equal(Capability.List, acl.CapabilitiesOn("a/b/c/d"));
        Assert.Equal(Capability.Read, acl.CapabilitiesOn("a/b/z/d"));
        Assert.Equal(Capability.List, acl.CapabilitiesOn("x/abcd"));
        Assert.Equal(Capability.Read, acl.CapabilitiesOn("x/abd"));
        Assert.True(Morphisms.Kms.Policies.Acl.Compare("a/b*", "a/a*") > 0);
    }

    [Fact]
    public void Policies_union_on_the_same_pattern_and_deny_wins()
    {
        var union = Acl("path \"s/*\" { capabilities = [\"read\"] }", "path \"s/*\" { capabilities = [\"update\"] }");
        Assert.Equal(Capability.Read | Capability.Update, union.CapabilitiesOn("s/x"));

        var denied = Acl("path \"s/*\" { capabilities = [\"read\"] }", "path \"s/*\" { capabilities = [\"deny\"] }");
        Assert.Equal(Capability.None, denied.CapabilitiesOn("s/x"));
        Assert.False(denied.Allows(Operation.Read, "s/x"));

        // A more specific deny takes away what a broad rule grants.
        var specific = Acl("path \"s/*\" { capabilities = [\"read\"] }\npath \"s/secret\" { capabilities = [\"deny\"] }");
        Assert.False(specific.Allows(Operation.Read, "s/secret"));
        Assert.True(specific.Allows(Operation.Read, "s/public"));
    }

    [Fact]
    public void Operations_need_their_capability_and_sudo_paths_need_sudo()
    {
        var acl = Acl("""
            path "s/data/*" { capabilities = ["create", "read"] }
            path "sys/seal" { capabilities = ["update"] }
            path "sys/rotate" { capabilities = ["update", "sudo"] }
            path "s/metadata" { capabilities = ["list"] }
            """);
        Assert.True(acl.Allows(Operation.Create, "s/data/a"));
        Assert.False(acl.Allows(Operation.Update, "s/data/a"));
        Assert.False(acl.Allows(Operation.Delete, "s/data/a"));
        Assert.False(acl.Allows(Operation.Update, "sys/seal", sudo: true));
        Assert.True(acl.Allows(Operation.Update, "sys/rotate", sudo: true));

        // LIST checks the path with a trailing slash, and an exact rule without it also counts.
        Assert.True(acl.Allows(Operation.List, "s/metadata/"));
        Assert.False(acl.Allows(Operation.Read, "nothing/here"));
    }

    [Theory]
    [InlineData("""path "secret/data/app/x" { capabilities = ["read"] }""", true)]
    [InlineData("""path "secret/metadata/*" { capabilities = ["list"] }""", true)]
    [InlineData("""path "secret/" { capabilities = ["read"] }""", true)]
    [InlineData("""path "sec*" { capabilities = ["read"] }""", true)]
    [InlineData("""path "+/data/x" { capabilities = ["read"] }""", true)]
    [InlineData("""path "+/+/x" { capabilities = ["read"] }""", true)]
    [InlineData("""path "+*" { capabilities = ["read"] }""", true)]
    [InlineData("""path "secret" { capabilities = ["read"] }""", false)]
    [InlineData("""path "secretx/*" { capabilities = ["read"] }""", false)]
    [InlineData("""path "other/+/x" { capabilities = ["read"] }""", false)]
    [InlineData("""path "+" { capabilities = ["read"] }""", false)]
    [InlineData("""path "secret/data/x" { capabilities = ["deny"] }""", false)]
    [InlineData("path \"*\" { capabilities = [\"read\"] }\npath \"secret/*\" { capabilities = [\"deny\"] }", false)]
    [InlineData("""path "transit/*" { capabilities = ["read"] }""", false)]
    public void Mount_access_needs_a_capability_somewhere_under_the_mount(string policy, bool access) =>
        Assert.Equal(access, Acl(policy).HasMountAccess("secret/"));

    [Fact]
    public void Mount_access_of_a_nested_mount_follows_its_segments()
    {
        Assert.True(Acl("""path "team/+/data/*" { capabilities = ["read"] }""").HasMountAccess("team/kv/"));
        Assert.False(Acl("""path "team/other/*" { capabilities = ["read"] }""").HasMountAccess("team/kv/"));
        Assert.False(Acl("""path "team/+" { capabilities = ["read"] }""").HasMountAccess("team/kv/"));
        Assert.True(new Acl([new Policy(BuiltinPolicies.Root, "", [])]).HasMountAccess("team/kv/"));
    }

    [Fact]
    public void The_root_policy_allows_everything()
    {
        var acl = new Acl([new Policy(BuiltinPolicies.Root, "", [])]);
        Assert.True(acl.IsRoot);
        Assert.True(acl.Allows(Operation.Delete, "anything/at/all", sudo: true));
    }

    [Fact]
    public void The_default_policy_parses_and_lets_a_token_look_after_itself()
    {
        var acl = new Acl([PolicyParser.Parse("default", BuiltinPolicies.DefaultText)]);
        Assert.True(acl.Allows(Operation.Read, "auth/token/lookup-self"));
        Assert.True(acl.Allows(Operation.Update, "auth/token/renew-self"));
        Assert.True(acl.Allows(Operation.Update, "auth/token/revoke-self"));
        Assert.False(acl.Allows(Operation.Update, "auth/token/create"));
        Assert.False(acl.Allows(Operation.Read, "secret/data/x"));
    }
}
