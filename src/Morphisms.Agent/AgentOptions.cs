using System.Text;
using Morphisms.Agent.Evidence;

namespace Morphisms.Agent;

/// <summary>Everything <c>morph-init</c> needs; the command line maps onto this.</summary>
public sealed record AgentOptions
{
    /// <summary>The KMS base address (https only: the agent never talks to a KMS it cannot pin).</summary>
    public required Uri Kms { get; init; }

    /// <summary>
    /// The KMS CA pin given on the command line (SHA-256 of the DER of the CA that issued the KMS's TLS certificate, or of
    /// that certificate; never the KMS PKI root, whose role leaves may name the KMS's host). It is not measured: the pin the
    /// agent uses comes from the TEE's measured launch configuration, and this one must agree with it. It is used on its
    /// own only with <see cref="AllowUnmeasuredPin"/> (or on the simulated TEE). See <see cref="Kms.PinResolver"/>.
    /// </summary>
    public byte[]? KmsCaSha256 { get; init; }

    /// <summary>
    /// The Kata initdata document (<c>--initdata</c>): under Kata the launch field holds its digest, and the pin comes
    /// from its <c>morph.toml</c> once the digest matches. See <see cref="Kms.PinResolver"/>.
    /// </summary>
    public Evidence.KataInitdata? Initdata { get; init; }

    /// <summary>Accept <see cref="KmsCaSha256"/> when the launch configuration carries no measured pin (logged loudly).</summary>
    public bool AllowUnmeasuredPin { get; init; }

    /// <summary>The function this instance runs.</summary>
    public required string Function { get; init; }

    /// <summary>The app's command line (program and arguments).</summary>
    public required IReadOnlyList<string> App { get; init; }

    /// <summary>The evidence provider: <c>sim</c>, <c>gramine</c>, <c>snp</c>, <c>tdx</c> or <c>auto</c>.</summary>
    public string Tee { get; init; } = "auto";

    /// <summary>The instance port where TLS is terminated (0 picks one, for tests).</summary>
    public int Port { get; init; } = 8443;

    /// <summary>The address the TLS terminator binds.</summary>
    public string ListenAddress { get; init; } = "0.0.0.0";

    /// <summary>The app's plain-HTTP port on loopback.</summary>
    public int AppPort { get; init; } = 8080;

    /// <summary>
    /// The app's UNIX domain socket (<c>--app-socket</c>), or null for loopback TCP on <see cref="AppPort"/>. When set,
    /// the app is told it in <see cref="AppSocketVariable"/> (and gets no <c>PORT</c>), and the TLS terminator and the
    /// readiness probe reach the app there. Required under Gramine: Gramine has no network stack of its own, so TCP,
    /// loopback included, runs through the host kernel, which would see and could change every decrypted request;
    /// UNIX domain sockets between processes of one Gramine instance are pipes it encrypts (TLS-PSK).
    /// </summary>
    public string? AppSocket { get; init; }

    /// <summary>The environment variable that tells the app the UNIX domain socket to serve plain HTTP on.</summary>
    public const string AppSocketVariable = "MORPH_APP_SOCKET";

    /// <summary>Where the app serves plain HTTP: <see cref="AppSocket"/> when set, else loopback TCP on <see cref="AppPort"/>.</summary>
    public System.Net.EndPoint AppEndPoint => AppSocket is { } socket
        ? new System.Net.Sockets.UnixDomainSocketEndPoint(socket)
        : new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, AppPort);

    /// <summary>Where secret files go (a tmpfs inside the TEE); created 0700, files 0400.</summary>
    public string SecretsDir { get; init; } = "/run/morph/secrets";

    /// <summary>
    /// The KV v2 path of the secret bundle when the KMS names none at login; defaults to <c>secret/data/FUNCTION</c>.
    /// It comes from the command line, which the host writes and nothing measures, so it never overrides the KMS.
    /// </summary>
    public string? SecretPath { get; init; }

    /// <summary>A command run (instead of SIGHUP) after new secrets are written.</summary>
    public string? ReloadCommand { get; init; }

    /// <summary>
    /// How long <see cref="ReloadCommand"/> may run before it is killed (its whole process tree) and logged as
    /// <c>reload_failed</c>: the maintenance loop waits for it, and renewal and rollover must not wait forever.
    /// </summary>
    public TimeSpan ReloadTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the secret bundle is checked for a new version.</summary>
    public TimeSpan SecretsPollInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where the cold-start report is POSTed (optional).</summary>
    public Uri? ReportUrl { get; init; }

    /// <summary>
    /// The bearer token the report is POSTed with: this instance's own, good for its own report only. The serving host
    /// hands it over in a file named by <see cref="ReportTokenFileVariable"/>, never on the command line (which every
    /// local user can read) nor in the environment (which the sandbox's PID 1 keeps where the app can read it).
    /// </summary>
    public string? ReportToken { get; init; }

    /// <summary>
    /// The environment variable <c>morph-init</c> may take <see cref="ReportToken"/> from (and removes, so the app does
    /// not inherit it), for an agent started without the serving host; the serving host uses
    /// <see cref="ReportTokenFileVariable"/>.
    /// </summary>
    public const string ReportTokenVariable = "MORPH_REPORT_TOKEN";

    /// <summary>
    /// The environment variable naming the file <c>morph-init</c> reads <see cref="ReportToken"/> from and deletes before
    /// it starts anything (see <see cref="Telemetry.ReportTokenHandOver"/>); removed like <see cref="ReportTokenVariable"/>.
    /// </summary>
    public const string ReportTokenFileVariable = "MORPH_REPORT_TOKEN_FILE";

    /// <summary>
    /// Why <c>morph-init</c> could not make itself non-dumpable (<see cref="App.NonDumpable"/>), logged as a
    /// <c>still_dumpable</c> warning before anything else; null when it could, or when the agent runs inside another
    /// process (tests), which the entry point's protection does not concern.
    /// </summary>
    public string? DumpableFailure { get; init; }

    /// <summary>Simulated TEE settings (<c>--tee sim</c>).</summary>
    public SimulatedTeeOptions Simulated { get; init; } = new();

    /// <summary>Device roots, overridable so tests drive the providers with fake device trees.</summary>
    public DeviceRoots Devices { get; init; } = new();

    /// <summary>Wraps the evidence provider <c>--tee</c> chose, so tests can make it fail at a chosen moment; null in production.</summary>
    internal Func<Evidence.IEvidenceProvider, Evidence.IEvidenceProvider>? WrapEvidence { get; init; }

    /// <summary>Replaces the kill that ends a stop of the app (given its pid), for tests of a kill that fails.</summary>
    internal Action<int>? KillAppForTests { get; init; }

    /// <summary>Attempts per KMS call before giving up on transport failures.</summary>
    public int KmsAttempts { get; init; } = 5;

    /// <summary>Delay before the first retry; it doubles per attempt.</summary>
    public TimeSpan KmsRetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// When the app process starts: <see cref="AppStart.AfterSecrets"/> (default) or <see cref="AppStart.Early"/>, in
    /// parallel with attestation, for apps that wait for <c>MORPH_SECRETS_READY</c> (see the README's "Early app start").
    /// </summary>
    public AppStart AppStart { get; init; } = AppStart.AfterSecrets;

    /// <summary>
    /// How long a client's connection through the TLS terminator may move no byte either way before it is closed
    /// (<see cref="Tls.TlsTerminator.DefaultIdleTimeout"/>, 5 minutes; <see cref="Timeout.InfiniteTimeSpan"/>: never).
    /// </summary>
    public TimeSpan ConnectionIdleTimeout { get; init; } = Tls.TlsTerminator.DefaultIdleTimeout;

    /// <summary>How long the app has to answer on its port.</summary>
    public TimeSpan AppReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the app has to exit after SIGTERM before it is killed.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The clock for renewals, re-attestation and phase timings.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Where structured log lines (JSON) go; standard error by default.</summary>
    public TextWriter? Log { get; init; }

    /// <summary>
    /// The KV path of the bundle: the path the KMS named at login (<c>data.secret_path</c>, the registered one, which an
    /// owned function's owners approve), else <see cref="SecretPath"/>, else <c>secret/data/FUNCTION</c>. The KMS's
    /// comes first because the command line is the host's: a host that could choose the path could feed the attested
    /// code secrets of its own (a signing key it knows).
    /// </summary>
    public string SecretPathFor(Kms.LoginResult login) => login.SecretPath ?? SecretPath ?? $"secret/data/{Function}";

    /// <summary>Why <see cref="SecretPath"/> is not used (the KMS named another path), or null when it is or none was given.</summary>
    public string? IgnoredSecretPath(Kms.LoginResult login) =>
        SecretPath is { } given && login.SecretPath is { } named && !string.Equals(given.Trim('/'), named.Trim('/'), StringComparison.Ordinal)
            ? $"--secret-path {given} is not the function's registered secret path; reading {named}, which the KMS named"
            : null;

    // A record's ToString prints every public property: this prints them all as the compiler would, but the report
    // token only as whether there is one, so it stays out of log lines, exception messages and debugger displays. A
    // property added above and not here is only missing from the text, never leaked.
    private bool PrintMembers(StringBuilder builder)
    {
        builder.Append("Kms = ").Append(Kms).Append(", KmsCaSha256 = ").Append(KmsCaSha256).Append(", Initdata = ").Append(Initdata)
            .Append(", AllowUnmeasuredPin = ").Append(AllowUnmeasuredPin).Append(", Function = ").Append(Function).Append(", App = ").Append(App)
            .Append(", Tee = ").Append(Tee).Append(", Port = ").Append(Port).Append(", ListenAddress = ").Append(ListenAddress)
            .Append(", AppPort = ").Append(AppPort).Append(", AppSocket = ").Append(AppSocket).Append(", AppEndPoint = ").Append(AppEndPoint)
            .Append(", SecretsDir = ").Append(SecretsDir).Append(", SecretPath = ").Append(SecretPath).Append(", ReloadCommand = ").Append(ReloadCommand)
            .Append(", ReloadTimeout = ").Append(ReloadTimeout).Append(", SecretsPollInterval = ").Append(SecretsPollInterval)
            .Append(", ReportUrl = ").Append(ReportUrl).Append(", ReportToken = ").Append(ReportToken is null ? "" : "[redacted]")
            .Append(", DumpableFailure = ").Append(DumpableFailure).Append(", Simulated = ").Append(Simulated).Append(", Devices = ").Append(Devices)
            .Append(", KmsAttempts = ").Append(KmsAttempts).Append(", KmsRetryDelay = ").Append(KmsRetryDelay).Append(", AppStart = ").Append(AppStart)
            .Append(", ConnectionIdleTimeout = ").Append(ConnectionIdleTimeout).Append(", AppReadyTimeout = ").Append(AppReadyTimeout)
            .Append(", DrainTimeout = ").Append(DrainTimeout).Append(", Time = ").Append(Time).Append(", Log = ").Append(Log);
        return true;
    }
}

/// <summary>The installation's simulated TEE, for machines without TEE hardware.</summary>
public sealed record SimulatedTeeOptions
{
    /// <summary>The simulated TEE authority's state directory.</summary>
    public string? AuthorityDirectory { get; init; }

    /// <summary>The function bundle directory that is measured.</summary>
    public string? BundleDirectory { get; init; }

    /// <summary>The launch configuration file that is measured with the bundle.</summary>
    public string? LaunchConfigFile { get; init; }

    /// <summary>The evidence format: <c>snp</c> or <c>sgx</c>.</summary>
    public string Format { get; init; } = "snp";

    /// <summary>SNP HOST_DATA the simulated host sets at launch (32 bytes; a KMS CA pin, as on hardware), or null for zeros.</summary>
    public byte[]? HostData { get; init; }
}

/// <summary>Where the TEE device interfaces live.</summary>
public sealed record DeviceRoots
{
    /// <summary>Gramine's attestation pseudo-filesystem.</summary>
    public string Gramine { get; init; } = "/dev/attestation";

    /// <summary>The configfs-tsm report directory.</summary>
    public string ConfigFsTsm { get; init; } = "/sys/kernel/config/tsm/report";

    /// <summary>
    /// A fixed, already existing configfs-tsm report entry to use (and leave in place), or null for a fresh entry per
    /// agent (removed afterwards). Tests point this at an entry of a fake tree they populated.
    /// </summary>
    public string? ConfigFsTsmEntry { get; init; }

    /// <summary>The SEV-SNP guest device.</summary>
    public string SevGuest { get; init; } = "/dev/sev-guest";

    /// <summary>The TDX guest device, whose TDREPORT (not a quote) gives MRCONFIGID when the sysfs file below is absent.</summary>
    public string TdxGuest { get; init; } = TdxGuestDevice.DefaultPath;

    /// <summary>The kernel's MRCONFIGID measurement file (Linux 6.16 and later), read in preference to the device.</summary>
    public string TdxMrConfigId { get; init; } = TdxMrConfigIdReader.DefaultMeasurementFile;
}

/// <summary>When <c>morph-init</c> starts the app.</summary>
public enum AppStart
{
    /// <summary>After attestation and secret provisioning succeeded; the app gets the bundle's env and argv.</summary>
    AfterSecrets,

    /// <summary>
    /// Right after the launch is measured and the KMS pin settled, in parallel with attestation. The app gets
    /// <c>MORPH_SECRETS_READY=stdin</c>: it must not read its secrets or listen until the line <c>ready</c> arrives on
    /// standard input (end of input without it: attestation failed, exit). No traffic reaches it before then.
    /// </summary>
    Early,
}
