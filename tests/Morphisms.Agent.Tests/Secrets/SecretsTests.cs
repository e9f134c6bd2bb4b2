using System.Text.Json.Nodes;
using Morphisms.Agent.Secrets;

namespace Morphisms.Agent.Tests.Secrets;

/// <summary>The secret bundle's parsing and the private directory's modes and atomic updates.</summary>
public sealed class SecretsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Directory.CreateTempSubdirectory("morph-secrets-").FullName, "s");

    [Fact]
    public void Parse_ReadsEnvFilesArgv()
    {
        var bundle = SecretBundle.Parse(3, JsonNode.Parse("""{"env":{"A":"1"},"files":{"t":"x","b":{"base64":"AQI="}},"argv":["--x"]}""")!.AsObject());
        Assert.Equal(3, bundle.Version);
        Assert.Equal("1", bundle.Env["A"]);
        Assert.Equal("x"u8.ToArray(), bundle.Files["t"]);
        Assert.Equal(new byte[] { 1, 2 }, bundle.Files["b"]);
        Assert.Equal(["--x"], bundle.Argv);
    }

    [Theory]
    [InlineData("""{"environment":{}}""", "unknown key 'environment'")]
    [InlineData("""{"files":{"../etc/passwd":"x"}}""", "plain name")]
    [InlineData("""{"files":{".hidden":"x"}}""", "plain name")]
    [InlineData("""{"files":{"b":{"base64":"%%"}}}""", "not valid base64")]
    [InlineData("""{"env":{"A=B":"x"}}""", "without '='")]
    [InlineData("""{"argv":[1]}""", "array of strings")]
    public void Parse_RejectsBadBundlesNamingTheFieldNotTheValue(string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => SecretBundle.Parse(1, JsonNode.Parse(json)!.AsObject()));
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData(230)]
    [InlineData(255)]
    public void ALongName_WithinTheFileSystemsLimit_Applies(int length)
    {
        // The temporary file beside it must not be longer than the name: NAME_MAX is 255 bytes for both.
        var name = new string('k', length);
        var bundle = SecretBundle.Parse(1, new JsonObject { ["files"] = new JsonObject { [name] = "x" } });
        var dir = new SecretDirectory(_dir);
        dir.Create();

        Assert.True(dir.Apply(bundle.Files));
        Assert.Equal("x", File.ReadAllText(Path.Combine(_dir, name)));
        Assert.Single(Directory.EnumerateFileSystemEntries(_dir));
    }

    [Fact]
    public void ANameOverTwoHundredFiftyFiveUtf8Bytes_IsRejected_ThoughItHasFewerChars()
    {
        // 150 UTF-16 chars, 300 UTF-8 bytes: no Linux file system can hold the name, so the bundle is refused as such
        // (secrets_rejected, once) rather than failing every write (secrets_not_applied, every poll).
        var name = new string('é', 150);
        var e = Assert.Throws<InvalidDataException>(() => SecretBundle.Parse(1, new JsonObject { ["files"] = new JsonObject { [name] = "x" } }));
        Assert.Contains("at most 255 bytes", e.Message);
    }

    [Fact]
    public void Directory_IsPrivate_FilesReadOnly_UpdatesReplaceAndRemove()
    {
        var dir = new SecretDirectory(_dir);
        dir.Create();
        Assert.True(dir.Apply(new Dictionary<string, byte[]> { ["a"] = [1], ["b"] = [2] }));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dir));
        Assert.Equal(UnixFileMode.UserRead, File.GetUnixFileMode(Path.Combine(_dir, "a")));

        Assert.False(dir.Apply(new Dictionary<string, byte[]> { ["a"] = [1], ["b"] = [2] }));
        Assert.True(dir.Apply(new Dictionary<string, byte[]> { ["a"] = [9] }));
        Assert.Equal(new byte[] { 9 }, File.ReadAllBytes(Path.Combine(_dir, "a")));
        Assert.False(File.Exists(Path.Combine(_dir, "b")));
        Assert.Single(Directory.EnumerateFileSystemEntries(_dir));
    }

    [Fact]
    public void ALinkPlantedUnderASecretsName_IsReplaced_NotFollowed()
    {
        var dir = new SecretDirectory(_dir);
        dir.Create();
        File.CreateSymbolicLink(Path.Combine(_dir, "a"), "/dev/zero");

        Assert.True(dir.Apply(new Dictionary<string, byte[]> { ["a"] = [1, 2] }));
        Assert.Null(new FileInfo(Path.Combine(_dir, "a")).LinkTarget);
        Assert.Equal(new byte[] { 1, 2 }, File.ReadAllBytes(Path.Combine(_dir, "a")));
    }

    [Fact]
    public void AnUpdateThatCannotBeCompleted_ChangesNoSecret()
    {
        var dir = new SecretDirectory(_dir);
        dir.Create();
        dir.Apply(new Dictionary<string, byte[]> { ["a"] = [1], ["b"] = [2] });

        // A directory where "c" should go: "a" is staged, then renaming "c" fails, and "a" must still be the old one.
        Directory.CreateDirectory(Path.Combine(_dir, "c", "sub"));
        Assert.ThrowsAny<IOException>(() => dir.Apply(new Dictionary<string, byte[]> { ["a"] = [9], ["c"] = [3] }));
        Assert.Equal(new byte[] { 1 }, File.ReadAllBytes(Path.Combine(_dir, "a")));
    }

    [Fact]
    public void AnUpdateThatFailsPartWay_NamesWhatItChanged_AndLeavesNoTemporary()
    {
        var dir = new SecretDirectory(_dir);
        dir.Create();
        dir.Apply(new Dictionary<string, byte[]> { ["a"] = [1], ["b"] = [2], ["c"] = [3] });

        // After the up-front checks, the app (which shares the directory's owner) puts a directory where "b" goes:
        // "a" has been replaced by then, "b" cannot be, and "c" is never reached.
        var calls = 0;
        dir.BeforeReplaceForTests = name =>
        {
            if (++calls == 2)
            {
                File.Delete(Path.Combine(_dir, name));
                Directory.CreateDirectory(Path.Combine(_dir, name, "sub"));
            }
        };
        var failed = Assert.Throws<SecretUpdateException>(() => dir.Apply(new Dictionary<string, byte[]> { ["a"] = [7], ["b"] = [8], ["c"] = [9] }));

        Assert.Equal(["a"], failed.Changed);
        Assert.Contains("already changed: 'a'", failed.Message, StringComparison.Ordinal);
        Assert.Equal(new byte[] { 7 }, File.ReadAllBytes(Path.Combine(_dir, "a")));
        Assert.Equal(new byte[] { 3 }, File.ReadAllBytes(Path.Combine(_dir, "c")));
        Assert.Empty(Directory.EnumerateFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void Wipe_RemovesTheDirectory()
    {
        var dir = new SecretDirectory(_dir);
        dir.Create();
        dir.Apply(new Dictionary<string, byte[]> { ["a"] = [1] });
        dir.Wipe();
        Assert.False(Directory.Exists(_dir));
        dir.Wipe();
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            foreach (var f in Directory.EnumerateFiles(_dir, "*", SearchOption.AllDirectories))
            {
                File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
        }

        Directory.Delete(Path.GetDirectoryName(_dir)!, recursive: true);
    }
}
