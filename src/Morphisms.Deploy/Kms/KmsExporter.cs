using Morphisms.Deploy.Knative;
using Morphisms.Deploy.Manifests;

namespace Morphisms.Deploy.Kms;

/// <summary>What to export for a replicated KMS.</summary>
public sealed record KmsExportRequest
{
    /// <summary>The KMS image (the <c>morph</c> CLI, which serves <c>morph kms server</c>), pinned by digest.</summary>
    public required string Image { get; init; }

    /// <summary>Number of KMS replicas.</summary>
    public int Replicas { get; init; } = 3;

    /// <summary>Name of the Deployment, Service and labels.</summary>
    public string Name { get; init; } = "morph-kms";

    /// <summary>Kubernetes namespace, or null.</summary>
    public string? Namespace { get; init; }

    /// <summary>The Secret holding the PostgreSQL connection string (key <see cref="DatabaseSecretKey"/>); created by the operator, never generated.</summary>
    public string DatabaseSecret { get; init; } = "morph-kms-postgres";

    /// <summary>The key in <see cref="DatabaseSecret"/>.</summary>
    public string DatabaseSecretKey { get; init; } = "connection-string";

    /// <summary>
    /// The TEE the KMS runs in: <see cref="ExportTee.Snp"/> or <see cref="ExportTee.Tdx"/>, a Kata confidential VM.
    /// Required unless <see cref="InsecureNoTee"/>: the two need different runtime classes and registrations, so no
    /// default could be right on both, and a missing choice must not fall back to no TEE.
    /// </summary>
    public ExportTee? Tee { get; init; }

    /// <summary>The runtime class, when the cluster's differs from <see cref="KnativeExporter.RuntimeClass"/>'s name for <see cref="Tee"/>.</summary>
    public string? RuntimeClass { get; init; }

    /// <summary>With <see cref="Tee"/>: the path of the <c>morph</c> executable in <see cref="Image"/> (the agent policy pins the whole argv).</summary>
    public string Command { get; init; } = DefaultCommand;

    /// <summary>
    /// INSECURE, for test clusters: an ordinary pod with no TEE and its TLS key from <see cref="TlsSecret"/>, which the
    /// cluster's administrators can read (and so impersonate the KMS to every agent).
    /// </summary>
    public bool InsecureNoTee { get; init; }

    /// <summary>With <see cref="InsecureNoTee"/>: the Secret (type kubernetes.io/tls) holding the KMS's serving certificate and key.</summary>
    public string TlsSecret { get; init; } = "morph-kms-tls";

    /// <summary>
    /// With <see cref="Tee"/>: the launch values of the Kata guest image the runtime class boots, when known — SNP: its
    /// MEASUREMENT (one value of 48 bytes); TDX: MRTD, RTMR0, RTMR1, RTMR2, RTMR3 (five of 48). They come from the Kata
    /// install (firmware, kernel, initrd, vCPUs), not from anything exported here, and are the same for every pod of the
    /// runtime class. Given, <see cref="KmsExporter.Pin"/> is complete; otherwise it names them as placeholders.
    /// </summary>
    public IReadOnlyList<byte[]>? GuestLaunchValues { get; init; }

    /// <summary>The default of <see cref="Command"/>, beside <c>morph-init</c> at <see cref="KnativeExporter.AgentPath"/>.</summary>
    public const string DefaultCommand = "/morph/morph";
}

/// <summary>
/// Generates a replicated KMS: Deployment + Service with probes on <c>/v1/sys/health</c>, the database connection taken
/// from a Secret, as plain YAML (<c>kms.yaml</c>) and as a kustomization (<c>kustomization.yaml</c> over <c>deployment.yaml</c>
/// and <c>service.yaml</c>). With a TEE the pods run in a Kata confidential VM, with initdata holding a Kata agent policy
/// that pins the image and argv, and the KMS makes its TLS key itself; <see cref="KmsExportRequest.InsecureNoTee"/> keeps
/// an ordinary pod with the key in a Secret, and says so. Either way the pod is hardened as the systemd unit is: a
/// non-root user (<see cref="RunAsUser"/>), no capabilities or way to gain any, a read-only root with memory-backed
/// <see cref="HomeDirectory"/> and <c>/tmp</c>, and no service account token.
/// </summary>
public static class KmsExporter
{
    /// <summary>The KMS's port.</summary>
    public const int Port = 8200;

    /// <summary>The environment variable the Deployment puts the PostgreSQL connection string in (what <c>--storage postgres</c> reads).</summary>
    public const string DatabaseEnvironmentVariable = "MORPHISMS_KMS_PG";

    /// <summary>The pod's own IP (downward API), from which each replica advertises its <c>--api-addr</c>.</summary>
    public const string PodIpVariable = "POD_IP";

    /// <summary>The KMS container's name (the agent policy admits containers by name).</summary>
    public const string ContainerName = "kms";

    /// <summary>
    /// The uid, gid and fsGroup the KMS runs as: the non-root <c>app</c> user of .NET's container images (<c>APP_UID</c>).
    /// Numeric and set by the pod, it overrides the image's <c>USER</c> (under guest pull the host cannot read the image
    /// to resolve a name), so any image works whose <see cref="KmsExportRequest.Command"/> others may read and execute.
    /// </summary>
    public const int RunAsUser = 1654;

    /// <summary>
    /// The KMS's <c>MORPHISMS_HOME</c>: the one directory it writes, for the simulated TEE it attests itself with (made at
    /// its first start; the systemd unit keeps it in its state directory). A memory-backed volume, as the root is read-only.
    /// </summary>
    public const string HomeDirectory = "/var/lib/morph-kms";

    private const string HomeVariable = "MORPHISMS_HOME";

    // Writable, memory-backed volumes (mount path, volume name): in a TEE they are in its memory, and the agent policy
    // admits no other kind. `morph kms server` starts with /tmp read-only as well; it is there for a library that wants it.
    private static readonly IReadOnlyList<(string Destination, string Volume)> MemoryVolumes = [(HomeDirectory, "home"), ("/tmp", "tmp")];

    // Pinned in the policy with these values. No diagnostics socket, as in the systemd unit: a debugger or dotnet-dump
    // of the same user would read the process's memory, keys included, through it.
    private static readonly IReadOnlyDictionary<string, string> FixedEnvironment = new Dictionary<string, string>
    {
        [HomeVariable] = HomeDirectory,
        ["DOTNET_EnableDiagnostics"] = "0",
    };

    /// <summary>Generates the files, and the launch value a verifier pins for a KMS in a TEE.</summary>
    /// <exception cref="ArgumentException">
    /// Replicas below 1, an image not pinned by digest, no TEE chosen (nor <see cref="KmsExportRequest.InsecureNoTee"/>),
    /// both, SGX, or a malformed runtime class or command.
    /// </exception>
    public static ExportResult Export(KmsExportRequest request)
    {
        Validate(request);
        var deploymentObject = Deployment(request, out var document);
        var digest = request.Tee is { } hashed ? Convert.ToHexStringLower(Initdata.Digest(document!, hashed)) : null;
        var header = "# Generated by `morph export kms`: replicas share one PostgreSQL database; the holder of its advisory lock is active,\n"
            + "# standbys answer sys/health with 429 (so only the active replica is Ready behind the Service) and redirect (307) to\n"
            + $"# https://$({PodIpVariable}):{Port}. Unseal every replica (or configure auto-unseal). See docs/kubernetes.md.\n"
            + Comment(request.Tee is { } tee ? TeeHeader(request, tee, digest!) : InsecureHeader(request));
        var deployment = YamlText.Write(deploymentObject);
        var service = YamlText.Write(Service(request));
        var kustomization = YamlText.Write(Map.Of(
            ("apiVersion", "kustomize.config.k8s.io/v1beta1"),
            ("kind", "Kustomization"),
            ("namespace", request.Namespace),
            ("resources", new List<object> { "deployment.yaml", "service.yaml" })));
        var files = new List<GeneratedFile>
        {
            new("kms.yaml", header + deployment + "---\n" + service),
            new("kustomization.yaml", kustomization),
            new("deployment.yaml", header + deployment),
            new("service.yaml", service),
        };
        var measured = new List<string>();
        if (request.Tee is { } measuredTee)
        {
            files.Add(new("initdata.toml", document!));
            measured.Add($"{Initdata.LaunchField(measuredTee)} (initdata {Initdata.Algorithm(measuredTee)}): {digest}");
            measured.Add($"KMS pin (morph kms trust URL --expect-measurement PIN): {Pin(measuredTee, Convert.FromHexString(digest!), request.GuestLaunchValues)}"
                + (request.GuestLaunchValues is null
                    ? $" — {GuestPlaceholder(measuredTee)}: the Kata guest image's launch {(measuredTee == ExportTee.Tdx ? "values" : "measurement")} (--guest-measurement), "
                        + $"the same for every pod of the runtime class, so the {Initdata.LaunchField(measuredTee)} is what binds this KMS"
                    : string.Empty));
            measured.Add("GAP: the KMS has no hardware self-attestation yet, and its self-signed certificate chains to no CA an agent can pin (docs/kubernetes.md)");
        }
        else
        {
            measured.Add($"INSECURE: no TEE; the TLS key is read from Secret {request.TlsSecret}, which the cluster's administrators can read");
        }

        return new ExportResult(files, measured);
    }

    /// <summary>
    /// The KMS pin a verifier gives <c>morph kms trust --expect-measurement</c> (the form of the client's
    /// <c>KmsMeasurementPin</c>) for a KMS in <paramref name="tee"/> whose initdata digest is <paramref name="digest"/>:
    /// <c>snp:MEASUREMENT,host_data=DIGEST</c> or <c>tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3,mrconfigid=DIGEST</c>. Under Kata the
    /// launch values measure the guest image every pod of the runtime class boots, so without the digest the pin would be
    /// passed by any pod of it. <paramref name="guest"/> fills them in; null leaves their names as placeholders.
    /// </summary>
    /// <exception cref="ArgumentException">SGX, a digest or launch value of the wrong size, or the wrong number of launch values.</exception>
    public static string Pin(ExportTee tee, ReadOnlySpan<byte> digest, IReadOnlyList<byte[]>? guest)
    {
        // SNP HOST_DATA holds the SHA-256 of the initdata, TDX MRCONFIGID its SHA-384 (Initdata.Digest).
        var (count, key, digestLength) = tee switch
        {
            ExportTee.Snp => (1, "host_data", 32),
            ExportTee.Tdx => (5, "mrconfigid", 48),
            _ => throw new ArgumentException("the KMS runs in a Kata confidential VM: snp or tdx"),
        };
        if (digest.Length != digestLength)
        {
            throw new ArgumentException($"a {Initdata.LaunchField(tee)} initdata digest is {digestLength} bytes, not {digest.Length}");
        }

        if (guest is not null && (guest.Count != count || guest.Any(v => v is not { Length: 48 })))
        {
            throw new ArgumentException($"the Kata guest's launch values for {tee.ToString().ToLowerInvariant()} are {GuestPlaceholder(tee)}: {count} of 48 bytes");
        }

        var launch = guest is null ? GuestPlaceholder(tee) : string.Join('/', guest.Select(Convert.ToHexStringLower));
        return $"{tee.ToString().ToLowerInvariant()}:{launch},{key}={Convert.ToHexStringLower(digest)}";
    }

    /// <summary>
    /// The Kata agent policy for a KMS pod: the <c>morph</c> image, its argv (with the pod IP Kubernetes expands into
    /// <c>--api-addr</c>), <c>MORPHISMS_HOME</c> and <c>DOTNET_EnableDiagnostics</c> with their values, no other
    /// variables but the database connection string, the pod IP and the runtime's own, and its memory-backed volumes.
    /// </summary>
    public static string Policy(KmsExportRequest request, ExportTee tee) => AgentPolicy.Rego(
        $"the KMS {request.Name} (TEE {tee.ToString().ToLowerInvariant()})",
        [
            new PolicyContainer
            {
                Name = ContainerName,
                Image = request.Image,
                Args = [request.Command, .. Arguments(request)],
                Expansions = new Dictionary<string, string> { [ApiAddress] = $"^https://[0-9a-f.:]+:{Port}$" },
                Env = FixedEnvironment,
                EnvNames = [.. AgentPolicy.RuntimeVariables, DatabaseEnvironmentVariable, PodIpVariable],
                MemoryVolumes = MemoryVolumes,
            },
        ]);

    // Kubernetes expands $(POD_IP) from the env below: the address standbys redirect to.
    private static readonly string ApiAddress = $"https://$({PodIpVariable}):{Port}";

    private static IReadOnlyList<string> Arguments(KmsExportRequest request) =>
    [
        "kms", "server", "--listen", $"0.0.0.0:{Port}", "--storage", "postgres", "--api-addr", ApiAddress,
        // In a TEE the KMS makes its key pair and certificate itself, in the TEE's memory; otherwise it reads them from the Secret.
        .. request.InsecureNoTee ? (string[])["--tls-cert", "/etc/morph/tls/tls.crt", "--tls-key", "/etc/morph/tls/tls.key"] : ["--tls-self"],
    ];

    private static string GuestPlaceholder(ExportTee tee) => tee == ExportTee.Tdx ? "MRTD/RTMR0/RTMR1/RTMR2/RTMR3" : "MEASUREMENT";

    private static IEnumerable<string> TeeHeader(KmsExportRequest request, ExportTee tee, string digest) =>
    [
        $"TEE {tee.ToString().ToLowerInvariant()}: each replica runs in a Kata confidential VM (runtimeClassName {RuntimeClassOf(request, tee)}; the",
        "runtime class comes from the Kata / Confidential Containers install). The KMS makes its TLS key and a self-signed",
        "certificate itself, inside the TEE (--tls-self): no Secret holds a key, so nobody with access to the cluster can read it.",
        $"Measured: the {Initdata.Annotation} annotation is initdata (gzip+base64 of initdata.toml); its {Initdata.PolicyEntry}",
        $"(Kata agent policy) pins this image, {request.Command} and its arguments, refuses exec, and Kata hashes it into",
        $"{Initdata.LaunchField(tee)} = {digest}.",
        "The Kata guest image's launch values are the same for every pod of the runtime class, so a verifier pins both:",
        $"morph kms trust URL --expect-measurement {Pin(tee, Convert.FromHexString(digest), request.GuestLaunchValues)}",
        "GAPS (docs/kubernetes.md): `morph kms server` has no hardware self-attestation yet (sys/attestation serves simulated",
        "evidence, which no client trusts), and its self-signed certificate differs per replica and restart, names only",
        "localhost and chains to no CA an agent's initdata can pin, so agents refuse it.",
    ];

    private static IEnumerable<string> InsecureHeader(KmsExportRequest request) =>
    [
        "INSECURE (--insecure-no-tee): an ordinary pod, no TEE. The TLS key is read from Secret " + request.TlsSecret + ", which the",
        "cluster's administrators can read: they can impersonate this KMS to every agent (agents check only that the certificate",
        "chains to the pinned CA) and read attest-login tokens and secret bundles. For test clusters only.",
    ];

    private static string Comment(IEnumerable<string> lines) => string.Concat(lines.Select(l => "# " + l + "\n"));

    private static string RuntimeClassOf(KmsExportRequest request, ExportTee tee) => request.RuntimeClass ?? KnativeExporter.RuntimeClass(tee);

    private static void Validate(KmsExportRequest request)
    {
        if (request.Replicas < 1)
        {
            throw new ArgumentException("replicas must be at least 1");
        }

        if (!KnativeExporter.IsPinnedByDigest(request.Image))
        {
            throw new ArgumentException($"the image must be pinned by digest (name@sha256:<64 hex>), got '{request.Image}'");
        }

        switch (request.Tee)
        {
            case null when !request.InsecureNoTee:
                throw new ArgumentException("choose the TEE the KMS runs in (--tee snp|tdx), or --insecure-no-tee for a test cluster");
            case not null when request.InsecureNoTee:
                throw new ArgumentException("--tee and --insecure-no-tee exclude each other");
            case ExportTee.Sgx:
                throw new ArgumentException("the KMS runs in a Kata confidential VM: --tee snp or tdx (SGX is not offered for the KMS)");
        }

        if (request.GuestLaunchValues is not null && request.InsecureNoTee)
        {
            throw new ArgumentException("the Kata guest's launch values are for a KMS in a TEE, not with --insecure-no-tee");
        }

        if (request.RuntimeClass is not null && request.InsecureNoTee)
        {
            throw new ArgumentException("--runtime-class is for a KMS in a TEE, not with --insecure-no-tee");
        }

        KubernetesNames.RequireSubdomain(request.RuntimeClass, "--runtime-class");
        KubernetesNames.RequireLabel(request.Namespace, "--namespace");
        KubernetesNames.RequireSubdomain(request.DatabaseSecret, "--db-secret");
        KubernetesNames.RequireSubdomain(request.TlsSecret, "--tls-secret");

        if (!request.Command.StartsWith('/') || request.Command.Any(char.IsControl))
        {
            throw new ArgumentException($"the command must be an absolute path in the image, got '{request.Command}'");
        }
    }

    private static OrderedDictionary<string, object?> Labels(KmsExportRequest request) =>
        Map.Of(("app.kubernetes.io/name", request.Name), ("app.kubernetes.io/component", "kms"), ("app.kubernetes.io/managed-by", "morph"));

    private static OrderedDictionary<string, object?> Deployment(KmsExportRequest request, out string? document)
    {
        // Readiness: only an unsealed, active replica takes traffic (a sealed one answers 503, standby 429).
        var readiness = Probe("/v1/sys/health", period: 5);
        // Liveness: a sealed or uninitialised KMS is alive and waits for an operator; restarting it would not unseal it.
        var liveness = Probe("/v1/sys/health?standbyok=true&sealedcode=200&uninitcode=200", period: 15);
        var env = new List<object>
        {
            Map.Of(("name", DatabaseEnvironmentVariable), ("valueFrom", Map.Of(("secretKeyRef", Map.Of(("name", request.DatabaseSecret), ("key", request.DatabaseSecretKey)))))),
            Map.Of(("name", PodIpVariable), ("valueFrom", Map.Of(("fieldRef", Map.Of(("fieldPath", "status.podIP")))))),
        };
        env.AddRange(FixedEnvironment.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => Map.Of(("name", e.Key), ("value", e.Value))));
        var mounts = new List<object>();
        var volumes = new List<object>();
        if (request.InsecureNoTee)
        {
            mounts.Add(Map.Of(("name", "tls"), ("mountPath", "/etc/morph/tls"), ("readOnly", true)));
            volumes.Add(Map.Of(("name", "tls"), ("secret", Map.Of(("secretName", request.TlsSecret)))));
        }

        mounts.AddRange(MemoryVolumes.Select(v => Map.Of(("name", v.Volume), ("mountPath", v.Destination))));
        volumes.AddRange(MemoryVolumes.Select(v => ContainerSecurity.MemoryVolume(v.Volume, "16Mi")));
        var container = Map.Of(
            ("name", ContainerName),
            ("image", request.Image),
            // In a TEE the policy pins the whole argv, so the executable is named rather than left to the image's entrypoint.
            ("command", request.InsecureNoTee ? null : new List<object> { request.Command }),
            ("args", Arguments(request).Cast<object>().ToList()),
            ("ports", new List<object> { Map.Of(("name", "https"), ("containerPort", Port)) }),
            ("env", env),
            ("readinessProbe", readiness),
            ("livenessProbe", liveness),
            ("securityContext", ContainerSecurity.Restricted(runAsNonRoot: null, readOnlyRoot: true)),
            ("volumeMounts", mounts));
        OrderedDictionary<string, object?>? annotations = null;
        document = null;
        if (request.Tee is { } tee)
        {
            document = Initdata.Document(tee, [(Initdata.PolicyEntry, Policy(request, tee))]);
            annotations = Map.Of((Initdata.Annotation, Initdata.Encode(document)));
        }

        return Map.Of(
            ("apiVersion", "apps/v1"),
            ("kind", "Deployment"),
            ("metadata", Map.Of(("name", request.Name), ("namespace", request.Namespace), ("labels", Labels(request)))),
            ("spec", Map.Of(
                ("replicas", request.Replicas),
                ("selector", Map.Of(("matchLabels", Map.Of(("app.kubernetes.io/name", request.Name))))),
                ("template", Map.Of(
                    ("metadata", Map.Of(("labels", Labels(request)), ("annotations", annotations))),
                    ("spec", Map.Of(
                        ("runtimeClassName", request.Tee is { } t ? RuntimeClassOf(request, t) : null),
                        // The KMS needs no Kubernetes API, in a TEE or not (and in one the policy refuses the token's mount).
                        ("automountServiceAccountToken", false),
                        ("enableServiceLinks", false),
                        // fsGroup makes the memory-backed volumes the KMS's group's, writable by it whatever the runtime mounts them as.
                        ("securityContext", Map.Of(
                            ("runAsNonRoot", true),
                            ("runAsUser", RunAsUser),
                            ("runAsGroup", RunAsUser),
                            ("fsGroup", RunAsUser))),
                        ("containers", new List<object> { container }),
                        ("volumes", volumes))))))));
    }

    private static OrderedDictionary<string, object?> Service(KmsExportRequest request) => Map.Of(
        ("apiVersion", "v1"),
        ("kind", "Service"),
        ("metadata", Map.Of(("name", request.Name), ("namespace", request.Namespace), ("labels", Labels(request)))),
        ("spec", Map.Of(
            ("selector", Map.Of(("app.kubernetes.io/name", request.Name))),
            ("ports", new List<object> { Map.Of(("name", "https"), ("port", Port), ("targetPort", "https")) }))));

    private static OrderedDictionary<string, object?> Probe(string path, int period) => Map.Of(
        ("httpGet", Map.Of(("path", path), ("port", "https"), ("scheme", "HTTPS"))),
        ("periodSeconds", period),
        ("timeoutSeconds", 3));
}
