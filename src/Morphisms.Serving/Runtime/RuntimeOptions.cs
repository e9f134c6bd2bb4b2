namespace Morphisms.Serving.Runtime;

/// <summary>How the local runtime starts instances.</summary>
public sealed record RuntimeOptions
{
    /// <summary>Working directory of instances: launch configurations and secret directories live under it.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>
    /// How to start <c>morph-init</c>: the program and leading arguments, e.g. <c>["dotnet", "/opt/morph/morph-init.dll"]</c>.
    /// Null uses <c>$MORPH_INIT</c> (a published build: a NativeAOT or apphost executable, or a <c>.dll</c> run with
    /// <c>dotnet</c>), else <c>morph-init.dll</c> beside the running assembly (JIT-compiled: the slowest start).
    /// </summary>
    public IReadOnlyList<string>? MorphInit { get; init; }

    /// <summary>The KMS the agents attest to (https).</summary>
    public Uri? KmsUrl { get; init; }

    /// <summary>
    /// The KMS CA pin (hex SHA-256 of the CA that issued the KMS's TLS certificate, or of that certificate) the agents
    /// use; also written into every launch configuration.
    /// </summary>
    public string? KmsCaSha256 { get; init; }

    /// <summary>The simulated TEE's state directory (<c>tee: sim</c>).</summary>
    public string? SimulatedTeeDirectory { get; init; }

    /// <summary>
    /// Where agents POST their cold-start report (the control API), or null. Each confidential instance gets its own
    /// report token for it (in the file <see cref="ProcessInstanceLauncher.ReportTokenFileVariable"/> names), good for its own report only.
    /// </summary>
    public Uri? ReportUrl { get; init; }

    /// <summary>Sandbox with bubblewrap: <c>auto</c> (when present and working), <c>off</c>, or <c>required</c>.</summary>
    public SandboxMode Sandbox { get; init; } = SandboxMode.Auto;

    /// <summary>Memory limit per instance through the cgroup v1 memory controller (0 = none); applied only where writable.</summary>
    public long MemoryLimitBytes { get; init; }

    /// <summary>Process limit per instance through the cgroup v1 pids controller (0 = none); applied only where writable.</summary>
    public int PidsLimit { get; init; }

    /// <summary>Lines of stdout/stderr kept per instance.</summary>
    public int LogLines { get; init; } = 500;

    /// <summary>
    /// Paths no instance's sandbox may show, nor any directory containing them, beside <see cref="DataDirectory"/> and
    /// <see cref="SimulatedTeeDirectory"/> (always protected): the serving host's own state, such as the directory of its
    /// control token. A launch whose bundle, programs or .NET root would expose one is refused.
    /// </summary>
    public IReadOnlyList<string> ProtectedPaths { get; init; } = [];

    /// <summary>
    /// The host's TEE guest interfaces. A sandboxed instance of a <c>tee: snp</c>, <c>tdx</c> or <c>sgx</c> function sees
    /// those of its TEE that exist here (<c>sim</c> and <c>none</c> see none); the defaults are the standard paths.
    /// </summary>
    public TeeInterfaces TeeInterfaces { get; init; } = new();

    /// <summary>Extra environment for every agent process (not the app's: the app's env comes from the spec and its bundle).</summary>
    public IReadOnlyDictionary<string, string> AgentEnvironment { get; init; } = new Dictionary<string, string>();
}

/// <summary>Whether instances run under bubblewrap.</summary>
public enum SandboxMode
{
    /// <summary>Use bubblewrap when it is installed and works here; otherwise plain processes, said in the log.</summary>
    Auto,

    /// <summary>Plain processes.</summary>
    Off,

    /// <summary>Refuse to start instances without bubblewrap.</summary>
    Required,
}
