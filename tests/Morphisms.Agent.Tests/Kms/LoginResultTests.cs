using System.Text.Json.Nodes;
using Morphisms.Agent.Kms;

namespace Morphisms.Agent.Tests.Kms;

/// <summary>A malformed login answer is an <see cref="InvalidDataException"/> naming the field, never a type error.</summary>
public sealed class LoginResultTests
{
    [Theory]
    [InlineData("""{"auth":{"client_token":7}}""", "auth.client_token is not a string")]
    [InlineData("""{"auth":{"client_token":"t","lease_duration":"30s"}}""", "auth.lease_duration is not an integer")]
    [InlineData("""{"auth":{"client_token":"t","lease_duration":-1}}""", "out of range")]
    [InlineData("""{"auth":{"client_token":"t","renewable":"yes"}}""", "auth.renewable is not a boolean")]
    [InlineData("""{"auth":{"client_token":"t"},"data":{"certificate":{}}}""", "data.certificate is not a string")]
    [InlineData("""{"auth":{"client_token":"t"},"data":{"ca_chain":[null]}}""", "data.ca_chain[0] is null")]
    [InlineData("""{"auth":{"client_token":"t"},"data":{"ca_chain":"pem"}}""", "data.ca_chain is not an array")]
    [InlineData("""{"auth":{"client_token":"t"},"data":{"secret_path":1}}""", "data.secret_path is not a string")]
    [InlineData("""{"data":{}}""", "without auth")]
    [InlineData("""{"auth":{"client_token":"t"},"data":[]}""", "data is not an object")]
    [InlineData("""{"auth":{"client_token":"t","metadata":"m"}}""", "auth.metadata is not an object")]
    [InlineData("""{"auth":{"client_token":"t"},"data":{"secret_path":"../sys/seal"}}""", "not a KV path")]
    public void MalformedFields_AreNamed(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => LoginResult.Parse(JsonNode.Parse(json)!.AsObject()));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void AWellFormedAnswer_Parses()
    {
        var login = LoginResult.Parse(JsonNode.Parse("""
            {"auth":{"client_token":"t","lease_duration":30,"renewable":true,"metadata":{"revision":"2","measurement":"ab"}},
             "data":{"certificate":"PEM","ca_chain":["A","B"]}}
            """)!.AsObject());
        Assert.Equal(TimeSpan.FromSeconds(30), login.LeaseDuration);
        Assert.True(login.Renewable);
        Assert.Equal(["A", "B"], login.CaChainPem);
        Assert.Equal("2", login.Revision);
        Assert.Equal("ab", login.Measurement);
    }
}
