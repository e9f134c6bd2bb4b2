namespace Morphisms.Kms.Tests.Seal;

public sealed class DevModeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-dev-").FullName;

    [Fact]
    public async Task Dev_mode_initialises_unseals_warns_and_unseals_again_after_restart()
    {
        var db = Path.Combine(_dir, "kms.db");
        var warnings = new StringWriter();
        var options = new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "sqlite:" + db, Dev = true, WarningWriter = warnings };
        string rootToken;
        await using (var server = new KmsServer(options))
        {
            await server.StartAsync();
            Assert.False(server.Sealed);
            rootToken = server.DevCredentials!.RootToken;
            Assert.Equal(db + ".dev-keys.json", server.DevCredentials.KeyFile);
            Assert.DoesNotContain(rootToken, server.DevCredentials.ToString(), StringComparison.Ordinal);
            using var http = new VaultHttp(new HttpClient { BaseAddress = server.BaseAddress }) { Token = rootToken };
            (await http.PostAsync("secret/data/x", new { data = new { v = "kept" } })).Expect(200);
        }

        Assert.Contains("dev mode", warnings.ToString(), StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(db + ".dev-keys.json"));

        await using (var again = new KmsServer(options))
        {
            await again.StartAsync();
            Assert.Equal(rootToken, again.DevCredentials!.RootToken);
            using var http = new VaultHttp(new HttpClient { BaseAddress = again.BaseAddress }) { Token = rootToken };
            Assert.Equal("kept", (await http.GetAsync("secret/data/x")).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        }

        File.Delete(db + ".dev-keys.json");
        await using var orphaned = new KmsServer(options);
        Assert.Contains("dev key file", (await Assert.ThrowsAsync<InvalidOperationException>(() => orphaned.StartAsync())).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_key_file_is_written_afresh_with_mode_0600_even_over_a_wider_old_one()
    {
        // Left from an earlier store whose database was removed, and readable by everyone.
        var db = Path.Combine(_dir, "fresh.db");
        var keyFile = db + ".dev-keys.json";
        await File.WriteAllTextAsync(keyFile, "old content");
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var options = new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "sqlite:" + db, Dev = true, WarningWriter = TextWriter.Null };
        string rootToken;
        await using (var server = new KmsServer(options))
        {
            await server.StartAsync();
            rootToken = server.DevCredentials!.RootToken;
        }

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        Assert.DoesNotContain("old content", await File.ReadAllTextAsync(keyFile), StringComparison.Ordinal);
        Assert.Equal([keyFile], Directory.GetFiles(_dir, "fresh.db.dev-keys.json*")); // no temporary file left
        await using var again = new KmsServer(options);
        await again.StartAsync();
        Assert.Equal(rootToken, again.DevCredentials!.RootToken);
    }

    [Theory]
    [InlineData("{", "is not JSON")]
    [InlineData("null", "is empty or lacks")]
    [InlineData("{}", "is empty or lacks")]
    [InlineData("""{"unseal_key_base64":"!!","root_token":"t"}""", "does not unseal this storage")]
    [InlineData("""{"unseal_key_base64":"AAAA","root_token":"t"}""", "does not unseal this storage")]
    [InlineData("""{"unseal_key_base64":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","root_token":"t"}""", "does not unseal this storage")]
    public async Task A_broken_or_foreign_key_file_is_refused_naming_it(string content, string reason)
    {
        var db = Path.Combine(_dir, "broken.db");
        var keyFile = db + ".dev-keys.json";
        var options = new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "sqlite:" + db, Dev = true, WarningWriter = TextWriter.Null };
        await using (var server = new KmsServer(options))
        {
            await server.StartAsync();
        }

        await File.WriteAllTextAsync(keyFile, content);
        await using var broken = new KmsServer(options);
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => broken.StartAsync());
        Assert.Contains($"the dev key file '{keyFile}' {reason}", refused.Message, StringComparison.Ordinal);
        Assert.True(broken.Sealed);
    }

    [Fact]
    public async Task Production_mode_never_unseals_by_itself()
    {
        await using var server = new KmsServer(new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "sqlite:" + Path.Combine(_dir, "p.db"), WarningWriter = TextWriter.Null });
        await server.StartAsync();
        Assert.True(server.Sealed);
        Assert.Null(server.DevCredentials);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
