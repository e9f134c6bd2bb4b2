namespace Morphisms.Kms;

/// <summary>How a <see cref="KmsServer"/> listens, stores and seals. The CLI's <c>morph kms server</c> flags map onto this.</summary>
public sealed record KmsServerOptions
{
    /// <summary><c>HOST:PORT</c> to listen on (<c>127.0.0.1:8200</c>, <c>[::1]:8200</c>, <c>localhost:0</c>); port 0 picks a free port.</summary>
    public string Listen { get; init; } = "127.0.0.1:8200";

    /// <summary>
    /// Storage: <c>sqlite:PATH</c>, <c>inmem</c> (tests and throw-away dev servers), or PostgreSQL shared by several
    /// nodes in active/standby HA: <c>postgres</c> (connection string in <c>MORPHISMS_KMS_PG</c>) or
    /// <c>postgres:file=PATH</c>.
    /// </summary>
    public required string Storage { get; init; }

    /// <summary>
    /// HA (PostgreSQL storage): the address clients reach this node at (Vault's <c>api_addr</c>), published while it
    /// is active so standbys can name and redirect to it: <c>http(s)://HOST:PORT</c>, https when this node serves TLS.
    /// Defaults to the bound listen address.
    /// </summary>
    public Uri? ApiAddress { get; init; }

    /// <summary>TLS: off (loopback only), PEM files, or a self-signed certificate made at start.</summary>
    public KmsTlsOptions Tls { get; init; } = KmsTlsOptions.Disabled;

    /// <summary>
    /// Insecure development mode: initialise with one key share if needed, keep the unseal key and root token in
    /// <see cref="DevKeyFile"/> (or in memory for <c>inmem</c> storage) and unseal automatically. Never the default.
    /// </summary>
    public bool Dev { get; init; }

    /// <summary>Where dev mode keeps its unseal key and root token; defaults to <c>PATH.dev-keys.json</c> beside the SQLite file.</summary>
    public string? DevKeyFile { get; init; }

    /// <summary>The append-only audit log file; null disables the audit device.</summary>
    public string? AuditLogPath { get; init; }

    /// <summary>The largest accepted request body; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1024 * 1024;

    /// <summary>TTL of a token created without one (Vault's default 768h).</summary>
    public TimeSpan DefaultTokenTtl { get; init; } = TimeSpan.FromHours(768);

    /// <summary>The default of <see cref="MaxTokenTtl"/>: Vault's 768h.</summary>
    public static readonly TimeSpan DefaultMaxTokenTtl = TimeSpan.FromHours(768);

    /// <summary>The longest any token may live from creation (Vault's default 768h).</summary>
    public TimeSpan MaxTokenTtl { get; init; } = DefaultMaxTokenTtl;

    /// <summary>The default of <see cref="FunctionCertificateMaxTtl"/>.</summary>
    public static readonly TimeSpan DefaultFunctionCertificateMaxTtl = TimeSpan.FromMinutes(15);

    /// <summary>
    /// The least <see cref="FunctionCertificateMaxTtl"/> may be: the agent re-attests two thirds through a certificate's
    /// life, so a cap of seconds would have every instance log in again every few seconds.
    /// </summary>
    public static readonly TimeSpan MinFunctionCertificateMaxTtl = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The longest a function certificate lives: attest-login issues it for the function's token max TTL, or this,
    /// whichever is shorter. A client that checks no revocation (Morphisms.Client's <c>RevocationCheck.Off</c>) reads no
    /// CRL, so this bounds how long after a revision is retired (its certificates revoked) such a client may still accept
    /// an instance of it that the KMS can no longer reach; one that checks refuses it within its CRL max age. At least
    /// <see cref="MinFunctionCertificateMaxTtl"/> and at most <see cref="MaxTokenTtl"/>; the agent re-attests two thirds
    /// through a certificate's life.
    /// </summary>
    public TimeSpan FunctionCertificateMaxTtl { get; init; } = DefaultFunctionCertificateMaxTtl;

    /// <summary>
    /// Why <paramref name="functionCertificateMaxTtl"/> cannot be <see cref="FunctionCertificateMaxTtl"/> beside a
    /// <see cref="MaxTokenTtl"/> of <paramref name="maxTokenTtl"/>, or null when it can.
    /// </summary>
    public static string? FunctionCertificateMaxTtlProblem(TimeSpan functionCertificateMaxTtl, TimeSpan maxTokenTtl) =>
        functionCertificateMaxTtl <= TimeSpan.Zero ? "the function certificate max TTL must be positive"
        : functionCertificateMaxTtl < MinFunctionCertificateMaxTtl
            ? $"the function certificate max TTL must be at least {Http.Durations.ToGoString(MinFunctionCertificateMaxTtl)}: "
                + "every instance re-attests two thirds through its certificate's life, so a shorter one has each log in again every few seconds"
        : functionCertificateMaxTtl > maxTokenTtl
            ? $"the function certificate max TTL ({Http.Durations.ToGoString(functionCertificateMaxTtl)}) must not exceed the max token TTL ({Http.Durations.ToGoString(maxTokenTtl)})"
        : null;

    /// <summary>Serve <c>sys/metrics</c> without a token (Vault's <c>unauthenticated_metrics_access</c>).</summary>
    public bool UnauthenticatedMetrics { get; init; }

    /// <summary>The cluster name reported by sys/health; a random one is chosen at init when null.</summary>
    public string? ClusterName { get; init; }

    /// <summary>The clock for token TTLs, KV timestamps and the audit log.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// How long a seal (also an HA step-down or a snapshot restore) waits for in-flight requests before it wipes the
    /// keys anyway, on <see cref="TimeProvider"/>. A request still running then fails with 503 "Vault is sealed";
    /// nothing it does afterwards uses the wiped keys.
    /// </summary>
    public TimeSpan SealDrainTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How often the node serving the unsealed state (the active node under HA) revokes the tokens that expired, on
    /// <see cref="TimeProvider"/>; zero or less turns the sweep off (expired tokens are then removed only when presented).
    /// </summary>
    public TimeSpan TokenSweepInterval { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Where warnings for the operator go (dev mode, plain HTTP); standard error by default.</summary>
    public TextWriter? WarningWriter { get; init; }

    /// <summary>Attestation login and self-attestation: trusted roots, the simulated TEE, challenge limits.</summary>
    public KmsAttestationOptions Attestation { get; init; } = new();

    /// <summary>Write ASP.NET Core's own logs (warnings and errors) to the console.</summary>
    public bool ConsoleLogging { get; init; }

    /// <summary>
    /// Auto-unseal (TEE sealing key or PKCS#11 key): start-up unseals from the root key it wrapped; the shares
    /// stay usable as recovery keys. Ignored in dev mode.
    /// </summary>
    public AutoUnseal.IRootKeyWrapper? AutoUnseal { get; init; }

    /// <summary>
    /// The least <c>max_operations</c> <c>sys/rotate/config</c> accepts: Vault's 1,000,000. Lower only in tests, which
    /// drive a rotation with a few writes; the API never lowers it.
    /// </summary>
    internal long MinRotateMaxOperations { get; init; } = Barrier.RotationConfig.MinMaxOperations;

    /// <summary>
    /// The barrier key's encryption count is persisted each time another half of this many encryptions was made
    /// (and at most every <see cref="BarrierEncryptionsPersistInterval"/>, and at seal); loading a keyring assumes the
    /// persisted count plus this many, more than a crash can leave unpersisted. Lower only in tests.
    /// </summary>
    internal long BarrierEncryptionsPersistEvery { get; init; } = 100_000;

    /// <summary>How often, on <see cref="TimeProvider"/>, a changed encryption count is persisted without reaching a mark.</summary>
    internal TimeSpan BarrierEncryptionsPersistInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The default of <see cref="MaxKvWaiters"/>.</summary>
    public const int DefaultMaxKvWaiters = 1024;

    /// <summary>
    /// How many long-poll KV reads (<c>wait_version_gt</c>) may wait at once across the KMS; one more is a 429.
    /// Each holds a connection, so this bounds what idle watchers can cost.
    /// </summary>
    public int MaxKvWaiters { get; init; } = DefaultMaxKvWaiters;
}

/// <summary>The listener's TLS configuration.</summary>
/// <param name="Mode">Off, PEM files, or self-signed.</param>
/// <param name="CertificateFile">PEM certificate (chain) for <see cref="KmsTlsMode.Files"/>.</param>
/// <param name="KeyFile">PEM private key for <see cref="KmsTlsMode.Files"/>.</param>
public sealed record KmsTlsOptions(KmsTlsMode Mode, string? CertificateFile = null, string? KeyFile = null)
{
    /// <summary>Plain HTTP; refused on non-loopback addresses.</summary>
    public static KmsTlsOptions Disabled { get; } = new(KmsTlsMode.Disabled);

    /// <summary>A fresh self-signed ECDSA P-256 certificate (its SPKI is what self-attestation will bind).</summary>
    public static KmsTlsOptions SelfSigned { get; } = new(KmsTlsMode.SelfSigned);

    /// <summary>A certificate and key from PEM files.</summary>
    public static KmsTlsOptions FromFiles(string certificateFile, string keyFile) => new(KmsTlsMode.Files, certificateFile, keyFile);
}

/// <summary>How the listener does TLS.</summary>
public enum KmsTlsMode
{
    /// <summary>Plain HTTP.</summary>
    Disabled,

    /// <summary>PEM certificate and key files.</summary>
    Files,

    /// <summary>A self-signed certificate generated at start.</summary>
    SelfSigned,
}
