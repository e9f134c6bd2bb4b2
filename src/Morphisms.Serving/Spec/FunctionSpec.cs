namespace Morphisms.Serving.Spec;

/// <summary>The TEE a function runs in. <c>sim</c> is the simulated TEE; <c>none</c> is plain, non-confidential serving (development and baselines).</summary>
public enum FunctionTee
{
    /// <summary>The installation's simulated TEE (SNP-format evidence, marked simulated).</summary>
    Sim,

    /// <summary>AMD SEV-SNP confidential VM.</summary>
    Snp,

    /// <summary>Intel SGX enclave under Gramine.</summary>
    Sgx,

    /// <summary>Intel TDX trust domain.</summary>
    Tdx,

    /// <summary>No TEE and no attestation: the baseline a confidential function is compared with.</summary>
    None,
}

/// <summary>Autoscaling settings of a function (Knative's annotations, as fields).</summary>
public sealed record ScaleSpec
{
    /// <summary>Lower bound on instances; 0 allows scale to zero.</summary>
    public int Min { get; init; }

    /// <summary>Upper bound on instances; 0 means unbounded.</summary>
    public int Max { get; init; }

    /// <summary>Instances started when a revision is created.</summary>
    public int Initial { get; init; } = 1;

    /// <summary>Target concurrent requests per instance.</summary>
    public double Target { get; init; } = 100;

    /// <summary>Target utilisation of <see cref="Target"/>, in (0, 1].</summary>
    public double TargetUtilization { get; init; } = 0.7;

    /// <summary>Hard limit of concurrent requests an instance receives; 0 = unlimited.</summary>
    public int ContainerConcurrency { get; init; }

    /// <summary>Stable window of the autoscaler.</summary>
    public TimeSpan StableWindow { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>How long the last instance stays after traffic stops, beyond the stable window.</summary>
    public TimeSpan ScaleToZeroGracePeriod { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Pre-attested standby instances kept per revision (warm pool).</summary>
    public int WarmPool { get; init; }
}

/// <summary>One entry of the traffic block.</summary>
/// <param name="Revision">A revision name, or <c>latest</c> for the newest revision.</param>
/// <param name="Percent">Share of the main host, 0–100.</param>
/// <param name="Tag">Optional tag: the revision also gets <c>&lt;tag&gt;-&lt;fn&gt;.&lt;domain&gt;</c>.</param>
public sealed record TrafficSpec(string Revision, int Percent, string? Tag);

/// <summary>
/// A function as the user writes it (YAML, Knative-like). Everything but <see cref="Traffic"/>
/// describes what runs and is measured; changing it creates a new revision.
/// </summary>
public sealed record FunctionSpec
{
    /// <summary>Function name: a DNS label.</summary>
    public required string Name { get; init; }

    /// <summary>The TEE to run in.</summary>
    public FunctionTee Tee { get; init; } = FunctionTee.Sim;

    /// <summary>Absolute path of the bundle directory (the function's files; measured).</summary>
    public required string Bundle { get; init; }

    /// <summary>The command to run, relative to the bundle directory.</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The plain-HTTP port the app listens on (loopback, inside the TEE).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>Non-secret environment (measured). Secrets come from <see cref="Secrets"/>.</summary>
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    /// <summary>KV v2 path of the secret bundle the agent fetches after attesting, or null.</summary>
    public string? Secrets { get; init; }

    /// <summary>Autoscaling.</summary>
    public ScaleSpec Scale { get; init; } = new();

    /// <summary>Traffic block; empty means 100 % to the latest revision.</summary>
    public IReadOnlyList<TrafficSpec> Traffic { get; init; } = [];
}
