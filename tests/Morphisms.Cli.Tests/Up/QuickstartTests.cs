using System.Text;
using System.Text.RegularExpressions;
using NSec.Cryptography;

namespace Morphisms.Cli.Tests.Up;

/// <summary>
/// The README's main command, run exactly as a user would: <c>dotnet morph.dll quickstart</c> in a clean home; and a
/// function it cannot run, refused with a message.
/// </summary>
[Collection(Kms.MorphismsHomeCollection.Name)]
public sealed partial class QuickstartTests
{
    [Fact]
    public async Task Quickstart_prints_a_verified_attestation_and_a_signature_that_verifies_with_the_printed_key()
    {
        var home = Directory.CreateTempSubdirectory("morph-quickstart-").FullName;
        try
        {
            await using var morph = MorphProcess.Start(home, "quickstart");
            Assert.True(await morph.ExitAsync(120) == 0, $"quickstart failed:\n{morph.Stdout}\n{morph.Stderr}");
            var stdout = morph.Stdout;

            // The attestation was verified against the KMS root CA pinned through the KMS's attestation.
            Assert.Contains("attestation  verified", stdout);
            Assert.Contains("  function     signer", stdout);
            Assert.Contains("  simulated    true", stdout);
            Assert.Contains("SIMULATED", stdout);
            var pinnedRoot = Field(stdout, @"root CA    sha256 ([0-9a-f]{64})");
            Assert.Contains($"(pinned KMS root CA sha256 {pinnedRoot})", stdout);
            Assert.Contains("[pinned root]", stdout);
            Assert.Matches(@"  measurement  snp:[0-9a-f]{96}", stdout);
            Assert.Contains("4. stopping", stdout);

            // The signature checks out with the public key the function printed, over exactly the message sent.
            var message = Encoding.UTF8.GetBytes(Field(stdout, "signed       \"(.*)\""));
            Assert.Equal("ed25519", Field(stdout, "  algorithm    (.+)"));
            var signature = Convert.FromBase64String(Field(stdout, "  signature    (.+)"));
            var publicKey = PublicKey.Import(SignatureAlgorithm.Ed25519, Convert.FromBase64String(Field(stdout, "  public key   (.+)")), KeyBlobFormat.RawPublicKey);
            Assert.True(SignatureAlgorithm.Ed25519.Verify(publicKey, message, signature));
            Assert.False(SignatureAlgorithm.Ed25519.Verify(publicKey, Encoding.UTF8.GetBytes("another message"), signature));

            // Stopped cleanly: nothing claims to be running any more.
            Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
            Assert.False(File.Exists(Path.Combine(home, "data", "serving.json")));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    [Fact]
    public async Task A_function_whose_secrets_are_outside_the_dev_kms_mounts_is_a_message_not_a_crash()
    {
        // The dev KMS mounts secret/, pki/ and transit/ only: a bundle under kv/ cannot be created there.
        var home = Directory.CreateTempSubdirectory("morph-quickstart-").FullName;
        try
        {
            var signer = Path.Combine(Path.GetDirectoryName(MorphProcess.MorphDll)!, "samples", "signer");
            var function = Path.Combine(home, "function");
            Directory.CreateDirectory(function);
            var yaml = (await File.ReadAllTextAsync(Path.Combine(signer, "function.yaml")))
                .Replace("secrets: secret/data/signer", "secrets: kv/data/app", StringComparison.Ordinal)
                .Replace("bundle: ./publish", "bundle: " + Path.Combine(signer, "publish"), StringComparison.Ordinal);
            Assert.Contains("secrets: kv/data/app", yaml);
            await File.WriteAllTextAsync(Path.Combine(function, "function.yaml"), yaml);

            await using var morph = MorphProcess.Start(home, "quickstart", "--function-dir", function);
            Assert.Equal(ExitCodes.Rejected, await morph.ExitAsync(120));
            Assert.Contains("morph: deploy: the secret bundle 'kv/data/app' could not be created in the dev KMS: 404 no handler for route", morph.Stderr);
            Assert.DoesNotContain("Unhandled exception", morph.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", morph.Stderr, StringComparison.Ordinal);

            // Stopped cleanly all the same.
            Assert.False(File.Exists(Path.Combine(home, "data", "up.json")));
            Assert.False(File.Exists(Path.Combine(home, "data", "serving.json")));
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }

    internal static string Field(string text, string pattern)
    {
        var match = Regex.Match(text, pattern, RegexOptions.Multiline);
        Assert.True(match.Success, $"no line matching '{pattern}' in:\n{text}");
        return match.Groups[1].Value.TrimEnd('\r');
    }
}
