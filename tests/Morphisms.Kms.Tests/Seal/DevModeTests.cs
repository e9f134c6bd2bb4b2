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
    public async Task Production_mode_never_unseals_by_itself()
    {
        await using var server = new KmsServer(new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "sqlite:" + Path.Combine(_dir, "p.db"), WarningWriter = TextWriter.Null });
        await server.StartAsync();
        Assert.True(server.Sealed);
        Assert.Null(server.DevCredentials);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
