namespace Morphisms.Deploy.Knative;

/// <summary>The hardware TEEs a function can be exported for (the simulated TEE exists on one machine only).</summary>
public enum ExportTee
{
    /// <summary>AMD SEV-SNP: a Kata confidential VM, runtime class <c>kata-qemu-snp</c>.</summary>
    Snp,

    /// <summary>Intel TDX: a Kata trust domain, runtime class <c>kata-qemu-tdx</c>.</summary>
    Tdx,

    /// <summary>Intel SGX: a Gramine enclave in an ordinary pod with the SGX devices.</summary>
    Sgx,
}

/// <summary>What to export: the function, where it runs and which KMS it must trust.</summary>
public sealed record ExportRequest
{
    /// <summary>The function spec (as <c>morph deploy</c> reads it).</summary>
    public required Serving.Spec.FunctionSpec Function { get; init; }

    /// <summary>The TEE to export for.</summary>
    public required ExportTee Tee { get; init; }

    /// <summary>The KMS base address the agent attests to (https).</summary>
    public required Uri Kms { get; init; }

    /// <summary>
    /// SHA-256 (DER) of the CA that issued the KMS's TLS certificate, or of that certificate, 32 bytes: the pin that goes
    /// into measured launch data. Never the KMS PKI root (<c>root_ca_sha256</c>), which also signs <c>pki/</c> role
    /// certificates for any name a role allows (<c>docs/operations.md</c>).
    /// </summary>
    public required byte[] KmsCaSha256 { get; init; }

    /// <summary>The container image, pinned by digest (<c>repo@sha256:…</c>).</summary>
    public required string Image { get; init; }

    /// <summary>Kubernetes namespace, or null for the one kubectl applies to.</summary>
    public string? Namespace { get; init; }

    /// <summary>
    /// SNP/TDX: Knative's queue-proxy image (<c>queue-sidecar-image</c> in the <c>config-deployment</c> ConfigMap of
    /// <c>knative-serving</c>), pinned by digest. Knative adds that container to every pod, inside the same TEE and
    /// network namespace, so the agent policy pins its image; required unless <see cref="InsecureUnpinnedQueueProxy"/>.
    /// </summary>
    public string? QueueProxyImage { get; init; }

    /// <summary>
    /// SNP/TDX, INSECURE, test clusters only: export without <see cref="QueueProxyImage"/>, so that the agent policy
    /// admits any image as queue-proxy — a program of the host's choosing inside the function's TEE, on its loopback.
    /// </summary>
    public bool InsecureUnpinnedQueueProxy { get; init; }
}

/// <summary>One generated file, relative to the output directory.</summary>
/// <param name="Path">Relative path.</param>
/// <param name="Content">UTF-8 text.</param>
public sealed record GeneratedFile(string Path, string Content);

/// <summary>The files of an export and the launch values a verifier registers for them.</summary>
/// <param name="Files">The generated files.</param>
/// <param name="Measured">Human-readable lines: what is measured and which value to register (e.g. HOST_DATA).</param>
public sealed record ExportResult(IReadOnlyList<GeneratedFile> Files, IReadOnlyList<string> Measured);
