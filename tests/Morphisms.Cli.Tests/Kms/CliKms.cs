using Morphisms.Kms;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>A KMS on loopback for CLI tests, with its root token in a file (tokens never go on the command line).</summary>
public sealed class CliKms : IAsyncDisposable
{
    private CliKms(KmsServer server, string directory, string? tokenFile)
    {
        Server = server;
        Directory = directory;
        TokenFile = tokenFile;
    }

    /// <summary>The server.</summary>
    public KmsServer Server { get; }

    /// <summary>A private temporary directory, deleted with the KMS.</summary>
    public string Directory { get; }

    /// <summary>The file with the root token (dev servers only).</summary>
    public string? TokenFile { get; }

    /// <summary>The KMS URL.</summary>
    public string Address => Server.BaseAddress!.ToString();

    /// <summary>A dev-mode KMS (initialised, unsealed), optionally with an audit log.</summary>
    public static async Task<CliKms> StartDevAsync(bool audit = false)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("morph-kms-cli-").FullName;
        var server = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "inmem",
            Dev = true,
            AuditLogPath = audit ? Path.Combine(directory, "audit.log") : null,
            WarningWriter = TextWriter.Null,
        });
        await server.StartAsync();
        var tokenFile = Path.Combine(directory, "token");
        await File.WriteAllTextAsync(tokenFile, server.DevCredentials!.RootToken + "\n");
        return new CliKms(server, directory, tokenFile);
    }

    /// <summary>A production-style KMS: not initialised.</summary>
    public static async Task<CliKms> StartFreshAsync()
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("morph-kms-cli-").FullName;
        var server = new KmsServer(new KmsServerOptions { Listen = "127.0.0.1:0", Storage = "inmem", WarningWriter = TextWriter.Null });
        await server.StartAsync();
        return new CliKms(server, directory, null);
    }

    /// <summary>Runs <c>morph kms ARGS --address URL [--token-file F]</c>.</summary>
    public Task<MorphRunner.Outcome> RunAsync(params string[] args) =>
        MorphRunner.RunAsync(["kms", .. args, "--address", Address, .. TokenFile is null ? Array.Empty<string>() : ["--token-file", TokenFile]]);

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
