using System.Diagnostics;
using System.Security.Cryptography;
using Npgsql;

namespace Morphisms.Kms.Tests;

/// <summary>
/// Gives a test class the shared <see cref="PostgresServer"/> (<c>IClassFixture&lt;PostgresFixture&gt;</c>): the
/// server starts with the first class that needs it and stops, its directory deleted, when the last one is done.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    /// <summary>The running server.</summary>
    public PostgresServer Server { get; private set; } = null!;

    /// <inheritdoc />
    public async Task InitializeAsync() => Server = await PostgresServer.AcquireAsync();

    /// <inheritdoc />
    public Task DisposeAsync() => PostgresServer.ReleaseAsync();
}

/// <summary>
/// A real PostgreSQL server from Debian's <c>postgresql</c> package: <c>initdb</c> and <c>pg_ctl</c> as the
/// <c>postgres</c> user (via <c>runuser</c> when the tests run as root) in a fresh temporary directory, on a free
/// loopback port, its Unix socket in that directory. Clients log in over TCP with a password (scram-sha-256) as a
/// dedicated role. Each test takes its own database, so test classes sharing the server run in parallel.
/// </summary>
public sealed class PostgresServer
{
    private const string Role = "kms";
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static Task<PostgresServer>? _current;
    private static int _users;
    private readonly string _root;
    private readonly string _bin;
    private readonly int _port;

    private PostgresServer(string root, string bin, int port, string password)
    {
        _root = root;
        _bin = bin;
        _port = port;
        Password = password;
    }

    /// <summary>The password of the role every connection string logs in as (tests check it never leaks).</summary>
    public string Password { get; }

    /// <summary>The shared server, started if no other test class holds it; pair with <see cref="ReleaseAsync"/>.</summary>
    /// <exception cref="InvalidOperationException">The PostgreSQL server binaries are not installed (the tests fail rather than skip).</exception>
    public static async Task<PostgresServer> AcquireAsync()
    {
        await Gate.WaitAsync();
        try
        {
            _users++;
            _current ??= StartAsync();
            return await _current;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Stops the server and deletes its directory when the last holder releases it.</summary>
    public static async Task ReleaseAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (--_users == 0 && _current is { } current)
            {
                _current = null;
                if (current.IsCompletedSuccessfully)
                {
                    await Task.Run(current.Result.Stop);
                }
            }
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>Creates a fresh, empty UTF-8 database and returns a connection string for it (TCP, password login).</summary>
    public async Task<string> CreateDatabaseAsync(string encoding = "UTF8")
    {
        var name = "kms_" + Guid.NewGuid().ToString("N");
        await using (var admin = new NpgsqlConnection(AdminConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name} OWNER {Role} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0", admin);
            await create.ExecuteNonQueryAsync();
        }

        return ConnectionString(name, Password);
    }

    /// <summary>A TCP connection string for <paramref name="database"/> with the given password.</summary>
    public string ConnectionString(string database, string password) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = _port,
        Database = database,
        Username = Role,
        Password = password,
        MaxPoolSize = 8,
        Timeout = 10,
    }.ConnectionString;

    /// <summary>Superuser access over the Unix socket (trust), for test setup only.</summary>
    private string AdminConnectionString => new NpgsqlConnectionStringBuilder
    {
        Host = _root,
        Port = _port,
        Database = "postgres",
        Username = "postgres",
        Pooling = false,
    }.ConnectionString;

    private static async Task<PostgresServer> StartAsync()
    {
        var bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "pg_ctl")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0)
                .FirstOrDefault()
            : null;
        if (bin is null)
        {
            throw new InvalidOperationException(
                "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): install Debian's postgresql package (scripts/install-test-deps.sh does); the PostgreSQL storage and HA tests need a real server");
        }

        var root = (await RunAsync("mktemp", "-d", Path.Combine(Path.GetTempPath(), "kms-pg-XXXXXXXX"))).Trim();
        var password = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var port = Morphisms.Testing.TestProcesses.FreePort();
        var server = new PostgresServer(root, bin, port, password);

        // Only if the run ends without releasing the server (a crash): a best effort, the host may not wait for it.
        AppDomain.CurrentDomain.ProcessExit += server.OnProcessExit;
        var data = Path.Combine(root, "data");
        await RunAsync(Path.Combine(bin, "initdb"), "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "-N");
        await RunAsync(
            Path.Combine(bin, "pg_ctl"),
            "-D",
            data,
            "-l",
            Path.Combine(root, "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            $"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=400",
            "start");
        await using (var admin = new NpgsqlConnection(server.AdminConnectionString))
        {
            await admin.OpenAsync();
            await using var role = new NpgsqlCommand($"CREATE ROLE {Role} LOGIN CREATEDB PASSWORD '{password}'", admin);
            await role.ExecuteNonQueryAsync();
        }

        return server;
    }

    private static async Task<string> RunAsync(string program, params string[] args)
    {
        var asRoot = Environment.UserName == "root";
        var start = new ProcessStartInfo(asRoot ? "runuser" : program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        if (asRoot)
        {
            // initdb and the server refuse to run as root.
            foreach (var a in new[] { "-u", "postgres", "--", program })
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0
            ? await stdout
            : throw new InvalidOperationException($"{Path.GetFileName(program)} failed (exit {process.ExitCode}): {await stderr}{await stdout}");
    }

    private void OnProcessExit(object? sender, EventArgs e) => Stop();

    private void Stop()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        try
        {
            RunAsync(Path.Combine(_bin, "pg_ctl"), "-D", Path.Combine(_root, "data"), "-m", "immediate", "-w", "stop").GetAwaiter().GetResult();
        }
        catch (InvalidOperationException)
        {
            // Never started, or already stopped: the directory goes anyway.
        }

        // The postmaster removes its socket and lock files as it exits; a delete racing with that is retried.
        for (var attempt = 0; Directory.Exists(_root); attempt++)
        {
            try
            {
                Directory.Delete(_root, recursive: true);
            }
            catch (Exception e) when ((e is IOException or UnauthorizedAccessException) && attempt < 20)
            {
                Thread.Sleep(100);
            }
        }
    }
}
