using System.Net;
using System.Security.Cryptography;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Cli.Commands.Kms;
using Morphisms.Cli.Paths;
using Morphisms.Client.Trust;
using Morphisms.Kms;
using Morphisms.Kms.SelfAttestation;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Runtime;
using ServingKms = Morphisms.Serving.Hosting.KmsConnection;

namespace Morphisms.Cli.Commands.Up;

/// <summary>
/// Everything <c>morph up</c> runs in one process: a dev KMS (SQLite under the data directory, dev seal, TLS
/// self-signed, the installation's simulated TEE trusted, loopback) and a confidential serving host pointed at it.
/// State lives under the data directory, so a second start finds the same KMS data, root CA and simulated TEE.
/// <c>morph quickstart</c> runs the same stack and tears it down when done.
/// </summary>
public sealed class LocalStack : IAsyncDisposable
{
    private readonly MorphPaths _paths;
    private FileStream? _lock;
    private SimulatedTeeAuthority? _tee;
    private KmsServer? _kms;
    private ServingHost? _serving;

    private LocalStack(MorphPaths paths) => _paths = paths;

    /// <summary>The directory the KMS keeps its database, dev keys, audit log, TLS certificate and token file in.</summary>
    public string KmsDirectory => Path.Combine(_paths.DataDirectory, "kms");

    /// <summary>The paths this stack uses.</summary>
    public MorphPaths Paths => _paths;

    /// <summary>The KMS.</summary>
    public KmsServer Kms => _kms ?? throw new InvalidOperationException("not started");

    /// <summary>The serving host.</summary>
    public ServingHost Serving => _serving ?? throw new InvalidOperationException("not started");

    /// <summary>The KMS as the client pinned it, through its attestation (not by reading any file).</summary>
    public KmsTrustRecord Trust { get; private set; } = null!;

    /// <summary>Where other commands find this stack.</summary>
    public UpStateFile State { get; private set; } = null!;

    /// <summary>The state file's path.</summary>
    public string StateFilePath => Path.Combine(_paths.DataDirectory, UpStateFile.FileName);

    /// <summary>The file a running stack holds locked, so that only one runs per data directory.</summary>
    public string LockFilePath => Path.Combine(_paths.DataDirectory, "up.lock");

    /// <summary>The file holding the serving control API's token (mode 0600, new at every start): what <c>morph deploy|ls|...</c> send.</summary>
    public string ControlTokenFile => Path.Combine(_paths.DataDirectory, ServingStateFile.ControlTokenFileName);

    /// <summary>The file holding the token that opens the control API's <c>GET /metrics</c> only (mode 0600, new at every start): what Prometheus sends.</summary>
    public string MetricsTokenFile => Path.Combine(_paths.DataDirectory, ServingStateFile.MetricsTokenFileName);

    /// <summary>The trust store the KMS was pinned in.</summary>
    public string TrustStorePath => Path.Combine(_paths.ConfigDirectory, KmsTrustCommand.TrustFileName);

    /// <summary>
    /// Starts the KMS, attests it and pins its root CA for this user, then starts serving against it.
    /// Warnings (dev mode, simulated TEE) and the serving log go to <paramref name="log"/>.
    /// </summary>
    /// <exception cref="UpException">Another <c>morph up</c> or <c>morph quickstart</c> is running on this data directory, or a part failed to start.</exception>
    public static async Task<LocalStack> StartAsync(MorphPaths paths, TextWriter log, CancellationToken ct)
    {
        var stack = new LocalStack(paths);
        try
        {
            await stack.StartCoreAsync(log, ct);
            return stack;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Writing the state, certificate or token file under the data directory (the message names the file).
            await stack.DisposeAsync();
            throw new UpException(e.Message);
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    private async Task StartCoreAsync(TextWriter log, CancellationToken ct)
    {
        // Locked before anything is read or written: up.json appears only once everything has started, so two stacks
        // started together would both find none and both initialise the KMS, the second overwriting the first's keys.
        Directory.CreateDirectory(_paths.DataDirectory);
        // The lock alone decides: an up.json left by a stack that is gone may name a pid the system has since given to
        // another live process, so with the lock taken it is stale and is overwritten once this stack runs. Without the
        // lock it only says who holds it.
        _lock = TryLock(LockFilePath);
        if (_lock is null)
        {
            var running = UpStateFile.ReadLive(StateFilePath);
            var holder = running is null ? "" : $" (pid {running.Pid}, gateway {running.Gateway})";
            throw new UpException($"morph up or morph quickstart is already running on the data directory {_paths.DataDirectory}{holder}; stop it first");
        }

        Directory.CreateDirectory(KmsDirectory);
        try
        {
            _tee = SimulatedTeeAuthority.LoadOrCreate(_paths.SimulatedTeeDirectory, TimeProvider.System);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new UpException($"the installation's simulated TEE cannot be loaded: {e.Message}");
        }

        var kmsMeasurement = KmsMeasurement.Simulated;
        _kms = new KmsServer(new KmsServerOptions
        {
            Listen = "127.0.0.1:0",
            Storage = "sqlite:" + Path.Combine(KmsDirectory, "kms.db"),
            Dev = true,
            Tls = KmsTlsOptions.SelfSigned,
            AuditLogPath = Path.Combine(KmsDirectory, "audit.log"),
            Attestation = new KmsAttestationOptions { SimulatedTee = _tee, TrustSimulatedTee = true, SimulatedMeasurement = kmsMeasurement },
            WarningWriter = log,
        });
        try
        {
            await _kms.StartAsync(ct);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or CryptographicException or System.Data.Common.DbException)
        {
            throw new UpException($"the KMS could not start: {e.Message}");
        }

        var kmsUrl = _kms.BaseAddress!;
        var caFile = Path.Combine(KmsDirectory, "tls.pem");
        PrivateFile.Write(caFile, _kms.TlsCertificate!.ExportCertificatePem() + "\n");
        var tokenFile = Path.Combine(KmsDirectory, "token");
        PrivateFile.Write(tokenFile, _kms.DevCredentials!.RootToken + "\n");

        // Pin the KMS the way any client must: through its evidence, bound to this TLS key and root CA with a fresh
        // nonce, showing the measurement of the KMS this process started. Only the simulated TEE of this installation
        // is added to the vendor roots.
        var trustOptions = new KmsTrustOptions { Anchors = _tee.TrustedWith(TrustAnchors.Vendor), ExpectedMeasurements = [KmsTrustCommand.DevKmsPin(kmsMeasurement)] };
        var outcome = await KmsAttestationClient.VerifyAsync(kmsUrl.ToString(), trustOptions, ct);
        if (!outcome.Trusted)
        {
            throw new UpException("the KMS's own attestation failed: " + string.Join("; ", outcome.Failures));
        }

        Trust = outcome.Record!;
        try
        {
            new KmsTrustStore(TrustStorePath).Save(Trust);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new UpException($"the KMS could not be pinned: {e.Message}");
        }

        var caSha256 = Convert.ToHexStringLower(SHA256.HashData(_kms.TlsCertificate.RawData));
        _serving = new ServingHost(new ServingHostOptions
        {
            Mode = GatewayMode.Confidential,
            DataDirectory = Path.Combine(_paths.DataDirectory, "serving"),
            GatewayListen = new IPEndPoint(IPAddress.Loopback, 0),
            Kms = new ServingKms { Url = kmsUrl, CaSha256 = caSha256, Token = _kms.DevCredentials.RootToken },
            SimulatedTeeDirectory = _paths.SimulatedTeeDirectory,
            StateFile = Path.Combine(_paths.DataDirectory, ServingStateFile.FileName),
            ControlTokenFile = ControlTokenFile,
            MetricsTokenFile = MetricsTokenFile,

            // The KMS's sealed state, its root token and the CA key live in the data directory, credentials in the config one.
            Runtime = new RuntimeOptions { DataDirectory = Path.Combine(_paths.DataDirectory, "serving"), ProtectedPaths = [_paths.DataDirectory, _paths.ConfigDirectory] },
            Log = log,
        });
        try
        {
            await _serving.StartAsync(ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException or System.Net.Sockets.SocketException)
        {
            // A port taken, morph-init missing (MORPH_INIT), a required sandbox absent, the data directory unwritable.
            throw new UpException($"serving could not start: {e.Message}");
        }

        State = new UpStateFile(kmsUrl.ToString(), caFile, caSha256, tokenFile, _serving.GatewayEndPoint.ToString(), _serving.Options.Domain,
            _serving.ControlUrl.ToString(), Environment.ProcessId);
        State.Write(StateFilePath);
    }

    /// <summary>Drains every instance and stops serving, then seals and stops the KMS; removes the state file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_serving is not null)
        {
            await _serving.DisposeAsync();
            _serving = null;
        }

        if (UpStateFile.ReadLive(StateFilePath)?.Pid == Environment.ProcessId)
        {
            File.Delete(StateFilePath);
        }

        if (_kms is not null)
        {
            await _kms.DisposeAsync();
            _kms = null;
        }

        _tee?.Dispose();
        _tee = null;

        // Last: the next stack may start only once this one's KMS is sealed and its files are released.
        _lock?.Dispose();
        _lock = null;
    }

    /// <summary>
    /// Opens <paramref name="path"/> with <see cref="FileShare.None"/> (an exclusive <c>flock</c> on Unix, as
    /// <see cref="KmsTrustStore"/> locks its file), or returns null when another process holds it. The kernel drops the
    /// lock when its holder exits, so a crashed stack never blocks the next; the file itself stays (deleting it would
    /// let two stacks lock two different files).
    /// </summary>
    /// <exception cref="UpException">The file cannot be opened for another reason (a read-only file system, a full disk).</exception>
    private static FileStream? TryLock(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            return new FileStream(path, options);
        }
        catch (IOException e) when (IsHeldElsewhere(e))
        {
            return null;
        }
        catch (IOException e)
        {
            throw new UpException($"the lock file {path} cannot be opened: {e.Message}");
        }
    }

    // .NET reports a lock held by another process as an IOException whose HResult is the raw errno on Unix (EWOULDBLOCK
    // from flock: 11 on Linux, 35 on macOS and the BSDs), and ERROR_SHARING_VIOLATION or ERROR_LOCK_VIOLATION as an
    // HRESULT on Windows. Anything else (EROFS, ENOSPC, ELOOP, EIO) is no other stack, and is said as what it is.
    private static bool IsHeldElsewhere(IOException e) =>
        e.GetType() == typeof(IOException) && (OperatingSystem.IsWindows()
            ? e.HResult is unchecked((int)0x80070020) or unchecked((int)0x80070021)
            : e.HResult == (OperatingSystem.IsLinux() ? 11 : 35));
}

/// <summary><c>morph up</c> could not start; the message is for the user.</summary>
public sealed class UpException(string message) : Exception(message);
