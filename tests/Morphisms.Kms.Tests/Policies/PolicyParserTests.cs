using Morphisms.Kms.Policies;

namespace Morphisms.Kms.Tests.Policies;

public class PolicyParserTests
{
    [Fact]
    public void Parses_hcl_blocks_comments_and_trailing_commas()
    {
        var policy = PolicyParser.Parse("app", """
            # a comment
            // another
            /* a block
               comment */
            path "secret/data/app/*" {
              capabilities = ["create", "read", "update",]
            }
            path "/sgx-pki/issue/app" { capabilities = ["read", "create", "update"] }
            path "secret/metadata/+" {
              policy = "read"
            }
            """);

        Assert.Equal("app", policy.Name);
        var rules = policy.Rules.ToDictionary(r => r.Pattern, r => r.Capabilities);
        Assert.Equal(Capability.Create | Capability.Read | Capability.Update, rules["secret/data/app/*"]);
        Assert.Equal(Capability.Create | Capability.Read | Capability.Update, rules["sgx-pki/issue/app"]);
        Assert.Equal(Capability.Read | Capability.List, rules["secret/metadata/+"]);
    }

    [Fact]
    public void Repeated_paths_are_merged()
    {
        var policy = PolicyParser.Parse("p", """
            path "a" { capabilities = ["read"] }
            path "a" { capabilities = ["list"] }
            """);
        Assert.Equal(Capability.Read | Capability.List, Assert.Single(policy.Rules).Capabilities);
    }

    [Fact]
    public void Parses_the_json_form()
    {
        var policy = PolicyParser.Parse("p", """{"path": {"secret/*": {"capabilities": ["read", "list"]}, "sys/seal": {"capabilities": ["sudo", "update"]}}}""");
        var rules = policy.Rules.ToDictionary(r => r.Pattern, r => r.Capabilities);
        Assert.Equal(Capability.Read | Capability.List, rules["secret/*"]);
        Assert.Equal(Capability.Sudo | Capability.Update, rules["sys/seal"]);
    }

    [Theory]
    [InlineData("path \"a\" { capabilities = [\"fly\"] }", "line 1: path \"a\": invalid capability \"fly\"")]
    [InlineData("path \"a\" { capabilities = [\"read\"]", "line 1: expected a key or '}', found end of input")]
    [InlineData("path \"a\" {\n allowed_parameters = []\n}", "line 2: path \"a\": \"allowed_parameters\" is not supported")]
    [InlineData("path \"a\" { color = \"red\" }", "unknown key \"color\"")]
    [InlineData("mount \"a\" { }", "line 1: unexpected key \"mount\"")]
    [InlineData("path \"a\" { }", "no capabilities given")]
    [InlineData("path \"a/*/b\" { capabilities = [\"read\"] }", "'*' is only allowed at the end")]
    [InlineData("path \"a/{{identity.entity.id}}\" { capabilities = [\"read\"] }", "templated policies are not supported")]
    [InlineData("path \"a {\n capabilities = [] }\n", "line 1: unterminated string")]
    [InlineData("path \"a\" { capabilities = <<EOF\n", "heredoc")]
    [InlineData("path \"a\" { capabilities = [\"read\" \"list\"] }", "expected ',' or ']'")]
    [InlineData("path \"a\" { policy = \"admin\" }", "invalid policy \"admin\"")]
    [InlineData("/* never closed", "unterminated comment")]
    [InlineData("path \"a\" { capabilities = [read] }", "expected a quoted capability or ']', found 'read'")]
    [InlineData("path \"a\" { capabilities = [@] }", "line 1: unexpected character '@'")]
    [InlineData("{\"path\": {\"a\": {\"capabilities\": [1]}}}", "capabilities must be strings")]
    [InlineData("{\"path\": {\"a\": {\"capabilities\": [\"read\"]}}, \"name\": \"x\"}", "unexpected key \"name\"")]
    [InlineData("{\"path\": ", "invalid JSON policy")]
    public void Rejects_invalid_policies_with_a_message_naming_the_problem(string text, string expected)
    {
        var e = Assert.Throws<PolicyParseException>(() => PolicyParser.Parse("p", text));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
