using System.Globalization;
using Morphisms.Deploy.Gramine;
using Morphisms.Deploy.Manifests;
using Morphisms.Serving.Spec;

namespace Morphisms.Deploy.Knative;

/// <summary>
/// Generates what runs a function on Knative: a <c>serving.knative.dev/v1</c> Service with <c>morph-init</c> as the
/// entrypoint, plus the Kata initdata (SNP/TDX) or the Gramine manifest template and Dockerfile (SGX).
/// </summary>
public static class KnativeExporter
{
    /// <summary>Where the image holds <c>morph-init</c> (a self-contained linux-x64 publish).</summary>
    public const string AgentPath = "/morph/morph-init";

    /// <summary>Where the image holds the function's bundle.</summary>
    public const string AppDirectory = "/app";

    /// <summary>The TLS port morph-init serves on.</summary>
    public const int AgentPort = 8443;

    /// <summary>
    /// The container variable that carries the initdata annotation to <c>morph-init --initdata</c> (SNP/TDX). The host
    /// could put anything there; the agent trusts it only once its digest matches HOST_DATA / MRCONFIGID.
    /// </summary>
    public const string InitdataVariable = "MORPH_INITDATA";

    /// <summary>The private (memory-backed) directory for provisioned secrets.</summary>
    public const string SecretsDirectory = "/run/morph/secrets";

    /// <summary>
    /// The app's UNIX domain socket under SGX (morph-init's <c>--app-socket</c>). Gramine has no network stack of its
    /// own, so loopback TCP would carry the decrypted requests through the host kernel; a UNIX domain socket between
    /// two processes of one Gramine instance is a pipe Gramine encrypts. Gramine keeps named sockets off the host's
    /// file system, so the path is only a name inside the instance.
    /// </summary>
    public const string AppSocket = "/run/morph/app.sock";

    /// <summary>The name of the function's container (the agent policy admits containers by name).</summary>
    public const string ContainerName = "function";

    /// <summary>The name of the container Knative adds to every pod.</summary>
    public const string QueueProxyName = "queue-proxy";

    /// <summary>
    /// queue-proxy's argv as the agent receives it: Knative gives the container no command or args, so containerd runs
    /// the image's entrypoint, which ko (Knative's image builder) sets to <c>/ko-app/</c> and the binary's name.
    /// </summary>
    public static readonly IReadOnlyList<string> QueueProxyArgs = ["/ko-app/queue"];

    /// <summary>Variables Knative sets in the function's container (values it chooses per revision).</summary>
    public static readonly IReadOnlyList<string> KnativeVariables = ["PORT", "K_REVISION", "K_CONFIGURATION", "K_SERVICE"];

    /// <summary>
    /// The variable that tells queue-proxy where to forward requests (<c>http://127.0.0.1:USER_PORT</c>); Knative sets
    /// it to the function container's port, <see cref="AgentPort"/>, and the agent policy pins that value: the app's
    /// plain port or CoCo's local API on loopback would otherwise be one edit of the pod away.
    /// </summary>
    public const string QueueProxyUserPortVariable = "USER_PORT";

    /// <summary>
    /// The other variables queue-proxy may have, admitted by name with any value: the ones Knative gives it (its
    /// revision's names, its own ports, timeouts, concurrency, logging, metrics, tracing and the readiness probe it
    /// runs, from Knative 1.8 to today's <c>OBSERVABILITY_CONFIG</c>) and the ones its ko-built image sets. None names
    /// where queue-proxy forwards requests.
    /// </summary>
    public static readonly IReadOnlyList<string> QueueProxyVariables =
    [
        "SERVING_NAMESPACE", "SERVING_SERVICE", "SERVING_CONFIGURATION", "SERVING_REVISION", "SERVING_POD", "SERVING_POD_IP",
        "QUEUE_SERVING_PORT", "QUEUE_SERVING_TLS_PORT", "CONTAINER_CONCURRENCY", "REVISION_TIMEOUT_SECONDS",
        "REVISION_RESPONSE_START_TIMEOUT_SECONDS", "REVISION_IDLE_TIMEOUT_SECONDS", "SERVING_LOGGING_CONFIG", "SERVING_LOGGING_LEVEL",
        "SERVING_REQUEST_LOG_TEMPLATE", "SERVING_ENABLE_REQUEST_LOG", "SERVING_REQUEST_METRICS_BACKEND",
        "SERVING_REQUEST_METRICS_REPORTING_PERIOD_SECONDS", "SERVING_ENABLE_PROBE_REQUEST_LOG", "SERVING_READINESS_PROBE",
        "TRACING_CONFIG_BACKEND", "TRACING_CONFIG_ZIPKIN_ENDPOINT", "TRACING_CONFIG_DEBUG", "TRACING_CONFIG_SAMPLE_RATE",
        "SYSTEM_NAMESPACE", "METRICS_DOMAIN", "METRICS_COLLECTOR_ADDRESS", "OBSERVABILITY_CONFIG", "ENABLE_PROFILING", "HOST_IP",
        "ENABLE_HTTP2_AUTO_DETECTION", "ENABLE_HTTP_FULL_DUPLEX", "ENABLE_MULTI_CONTAINER_PROBES", "ROOT_CA",
        "KO_DATA_PATH", "SSL_CERT_FILE",
    ];

    // The memory-backed volume for SecretsDirectory.
    private const string SecretsVolume = "morph-secrets";

    // Under Kata the root is read-only and /tmp a private tmpfs, as on a serving host (Bubblewrap), with no size limit
    // but the pod's memory.
    private const string TempDirectory = "/tmp";

    private const string TempVolume = "tmp";

    /// <summary>Generates the files for <paramref name="request"/>.</summary>
    /// <exception cref="ArgumentException">The request is unusable (an image not pinned by digest, no queue-proxy image for SNP/TDX without the insecure flag, pin not 32 bytes, KMS not https).</exception>
    public static ExportResult Export(ExportRequest request)
    {
        Validate(request);
        return request.Tee == ExportTee.Sgx ? ExportSgx(request) : ExportKata(request);
    }

    /// <summary>
    /// The Kata runtime class for a VM-based TEE (the names Kata's and CoCo's installers register); the one place
    /// functions and the KMS take it from.
    /// </summary>
    public static string RuntimeClass(ExportTee tee) => tee switch
    {
        ExportTee.Snp => "kata-qemu-snp",
        ExportTee.Tdx => "kata-qemu-tdx",
        _ => throw new ArgumentOutOfRangeException(nameof(tee), tee, "SGX runs in an ordinary pod"),
    };

    /// <summary>morph-init's command line (after the executable) for <paramref name="request"/>.</summary>
    public static IReadOnlyList<string> AgentArguments(ExportRequest request, string teeFlag)
    {
        var spec = request.Function;
        var args = new List<string>
        {
            "--kms", request.Kms.AbsoluteUri, "--function", spec.Name, "--tee", teeFlag,
            "--port", AgentPort.ToString(CultureInfo.InvariantCulture),
            "--secrets-dir", SecretsDirectory,
        };
        args.InsertRange(args.IndexOf("--secrets-dir"), teeFlag == "gramine"
            ? ["--app-socket", AppSocket]
            : ["--app-port", spec.Port.ToString(CultureInfo.InvariantCulture)]);
        if (spec.Secrets is { } secrets)
        {
            args.AddRange(["--secret-path", secrets]);
        }

        if (teeFlag is "snp" or "tdx")
        {
            // Under Kata, HOST_DATA / MRCONFIGID hold the initdata digest, not the pin: the agent needs the document.
            args.AddRange(["--initdata", $"env:{InitdataVariable}"]);
        }

        args.Add("--");
        args.AddRange(AppCommand(spec));
        return args;
    }

    /// <summary>
    /// The Kata agent policy for <paramref name="request"/>'s pod: the function's container with its image, argv and
    /// environment pinned, and Knative's queue-proxy with its argv (<see cref="QueueProxyArgs"/>), its image
    /// (<see cref="ExportRequest.QueueProxyImage"/>, unless the export is insecure) and the port it forwards to
    /// (<see cref="QueueProxyUserPortVariable"/>) pinned, its other variables admitted by name (<see cref="QueueProxyVariables"/>).
    /// </summary>
    public static string Policy(ExportRequest request)
    {
        var teeFlag = request.Tee == ExportTee.Snp ? "snp" : "tdx";
        var function = new PolicyContainer
        {
            Name = ContainerName,
            Image = request.Image,
            Args = [AgentPath, .. AgentArguments(request, teeFlag)],
            Env = request.Function.Env,
            // MORPH_INITDATA carries this very document, so it cannot be pinned here: morph-init checks it against the report.
            EnvNames = [.. AgentPolicy.RuntimeVariables, .. KnativeVariables, InitdataVariable],
            MemoryVolumes = [(SecretsDirectory, SecretsVolume), (TempDirectory, TempVolume)],
        };
        var queueProxy = new PolicyContainer
        {
            Name = QueueProxyName,
            Image = request.QueueProxyImage,
            Args = QueueProxyArgs,
            Env = new Dictionary<string, string> { [QueueProxyUserPortVariable] = AgentPort.ToString(CultureInfo.InvariantCulture) },
            EnvNames = [.. AgentPolicy.RuntimeVariables, .. QueueProxyVariables],
        };
        return AgentPolicy.Rego($"function {request.Function.Name} (Knative Service, TEE {teeFlag})", [function, queueProxy]);
    }

    private static ExportResult ExportKata(ExportRequest request)
    {
        var document = Initdata.Document(request, Policy(request));
        var digest = Initdata.Digest(document, request.Tee);
        var field = Initdata.LaunchField(request.Tee);
        var annotations = Autoscaling(request.Function.Scale);
        annotations.Add(Initdata.Annotation, Initdata.Encode(document));
        var container = Container(request, [AgentPath], AgentArguments(request, request.Tee == ExportTee.Snp ? "snp" : "tdx"), resources: null);
        var initdataFromAnnotation = Map.Of(
            ("name", InitdataVariable),
            ("valueFrom", Map.Of(("fieldRef", Map.Of(("fieldPath", $"metadata.annotations['{Initdata.Annotation}']"))))));
        container["env"] = (container["env"] as List<object> ?? []).Prepend(initdataFromAnnotation).ToList();
        ((List<object>)container["volumeMounts"]!).Add(Map.Of(("name", TempVolume), ("mountPath", TempDirectory)));
        var podSpec = PodSpec(request, RuntimeClass(request.Tee), container, [ContainerSecurity.MemoryVolume(TempVolume, sizeLimit: null)]);
        var queueProxyLine = request.QueueProxyImage is null
            ? "INSECURE (--insecure-unpinned-queue-proxy): the queue-proxy container's image is NOT pinned; the host may run any image in the function's TEE."
            : $"queue-proxy's image is pinned to {request.QueueProxyImage} (Knative's config-deployment must name the same digest),";
        var queueProxyPortLine = $"and the port it forwards to, {QueueProxyUserPortVariable}={AgentPort} (morph-init's TLS port); its other variables are Knative's, by name.";
        var header = new[]
        {
            $"Generated by `morph export knative` for function {request.Function.Name} (TEE {request.Tee.ToString().ToLowerInvariant()}).",
            $"runtimeClassName needs Knative's `kubernetes.podspec-runtimeclassname: enabled` in config-features (knative-serving namespace);",
            $"without it the webhook rejects the Service. The runtime class comes from the Kata / Confidential Containers install.",
            $"{InitdataVariable} is read from the pod's initdata annotation (downward API), which needs `kubernetes.podspec-fieldref: enabled` too;",
            "morph-init checks the document's digest against the hardware report before it believes the pin inside.",
            $"Measured: the {Initdata.Annotation} annotation is initdata (gzip+base64 of initdata.toml);",
            $"Kata hashes it ({(request.Tee == ExportTee.Snp ? "SHA-256" : "SHA-384")}) into {field} = {Convert.ToHexStringLower(digest)}.",
            $"Its {Initdata.PolicyEntry} is the Kata agent policy: it pins the function container's image, argv and environment,",
            "refuses exec, stdin and a new policy, and confines mounts, copied files and capabilities. It needs guest image pull",
            "(CoCo with the nydus snapshotter) and containerd; editing this YAML's image, command, args or env makes the agent refuse the pod.",
            queueProxyLine,
            queueProxyPortLine,
            "See docs/kubernetes.md for exactly what is pinned and what is not.",
        };
        var files = new List<GeneratedFile>
        {
            new("service.yaml", Comment(header) + YamlText.Write(Service(request, annotations, podSpec))),
            new("initdata.toml", document),
        };
        var measured = new List<string>
        {
            $"{field} (initdata {Initdata.Algorithm(request.Tee)}): {Convert.ToHexStringLower(digest)}",
            // The guest image's own values are the same for every pod on the runtime class: this digest is what names the function.
            request.Tee == ExportTee.Snp
                ? "register with the KMS as snp.host_data, alongside the Kata guest's launch measurement (snp.measurements) and the platform firmware's floor (snp.minimum_tcb)"
                : "register with the KMS as tdx.mrconfigid, alongside the Kata guest's tdx.mrtds, tdx.rtmr1 (kernel) and tdx.rtmr2 (command line and initrd)",
            SecretPathLine(request.Function),
            $"agent policy ({Initdata.PolicyEntry} in initdata): image, argv and env of container {ContainerName} pinned; exec and stdin refused",
        };
        if (request.QueueProxyImage is null)
        {
            measured.Add("INSECURE (--insecure-unpinned-queue-proxy): queue-proxy's image is not pinned: the host may run any image beside the function in its TEE");
        }

        return new ExportResult(files, measured);
    }

    private static ExportResult ExportSgx(ExportRequest request)
    {
        var name = request.Function.Name;
        var manifest = GramineManifest.Template(request);
        var resources = Map.Of(
            ("limits", Map.Of(
                // The Intel SGX device plugin maps /dev/sgx_enclave and /dev/sgx_provision into the container for
                // these resources; Knative does not allow hostPath device nodes or privileged containers.
                ("sgx.intel.com/enclave", "1"),
                ("sgx.intel.com/provision", "1"))));
        var container = Container(request, command: null, args: null, resources);
        ((List<object>)container["volumeMounts"]!).Add(Map.Of(("name", "aesmd"), ("mountPath", "/var/run/aesmd")));
        var aesmd = Map.Of(("name", "aesmd"), ("hostPath", Map.Of(("path", "/var/run/aesmd"), ("type", "Directory"))));
        var podSpec = PodSpec(request, runtimeClassName: null, container, [aesmd]);
        var header = new[]
        {
            $"Generated by `morph export knative` for function {name} (TEE sgx, Gramine).",
            "The image is built from ./Dockerfile; its entrypoint is `gramine-sgx " + name + "`, which starts morph-init in the enclave.",
            "Needs the Intel SGX device plugin (resources sgx.intel.com/enclave, sgx.intel.com/provision) and aesmd on the node;",
            "the aesmd socket is a hostPath volume, which Knative accepts only with its hostPath volume feature flag",
            "(`kubernetes.podspec-volumes-hostpath: enabled` in config-features; check the name for your Knative release).",
            "Measured: the manifest (argv, env including the KMS CA pin, trusted file hashes) goes into MRENCLAVE;",
            "run `morph measure sgx --sigstruct " + name + ".sig` on the built .sig to get the values to register.",
        };
        var files = new List<GeneratedFile>
        {
            new("service.yaml", Comment(header) + YamlText.Write(Service(request, Autoscaling(request.Function.Scale), podSpec))),
            new($"{name}.manifest.template", manifest),
            new("Dockerfile", GramineManifest.Dockerfile(request)),
        };
        var measured = new List<string>
        {
            "MRENCLAVE: covers the manifest, including loader.env.MORPH_KMS_CA_SHA256 and loader.argv",
            $"build the image, then run `morph measure sgx --sigstruct {name}.sig --json` and register the sgx section",
            SecretPathLine(request.Function),
        };
        return new ExportResult(files, measured);
    }

    // The agent reads its bundle where the KMS says at login (its --secret-path is only a fallback, since whoever runs
    // the pod writes its arguments), so a custom path works only once it is registered.
    private static string SecretPathLine(FunctionSpec spec) => spec.Secrets is { } path
        ? $"register secret_path {path} too (morph kms function register --secret-path {path}): instances read their bundle where the KMS names, secret/data/{spec.Name} when none is registered"
        : $"secret bundle: secret/data/{spec.Name} (the KMS's default; register secret_path to read another)";

    private static OrderedDictionary<string, object?> Service(ExportRequest request, OrderedDictionary<string, object?> annotations, OrderedDictionary<string, object?> podSpec)
    {
        var spec = request.Function;
        var labels = Map.Of(("app.kubernetes.io/name", spec.Name), ("app.kubernetes.io/managed-by", "morph"), ("morphisms.dev/tee", request.Tee.ToString().ToLowerInvariant()));
        var serviceSpec = Map.Of(("template", Map.Of(("metadata", Map.Of(("labels", labels), ("annotations", annotations))), ("spec", podSpec))));
        if (spec.Traffic.Count > 0)
        {
            serviceSpec.Add("traffic", spec.Traffic.Select(t => (object)Map.Of(
                ("latestRevision", t.Revision == "latest" ? true : null),
                ("revisionName", t.Revision == "latest" ? null : t.Revision),
                ("percent", t.Percent),
                ("tag", t.Tag))).ToList());
        }

        return Map.Of(
            ("apiVersion", "serving.knative.dev/v1"),
            ("kind", "Service"),
            ("metadata", Map.Of(("name", spec.Name), ("namespace", request.Namespace), ("labels", labels))),
            ("spec", serviceSpec));
    }

    /// <summary>The per-revision KPA annotations equivalent to <paramref name="scale"/>.</summary>
    public static OrderedDictionary<string, object?> Autoscaling(ScaleSpec scale) => Map.Of(
        ("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev"),
        ("autoscaling.knative.dev/metric", "concurrency"),
        ("autoscaling.knative.dev/target", Number(scale.Target)),
        ("autoscaling.knative.dev/target-utilization-percentage", Number(scale.TargetUtilization * 100)),
        ("autoscaling.knative.dev/min-scale", Number(scale.Min)),
        ("autoscaling.knative.dev/max-scale", Number(scale.Max)),
        ("autoscaling.knative.dev/initial-scale", Number(scale.Initial)),
        ("autoscaling.knative.dev/window", Seconds(scale.StableWindow)),
        // Knative's scale-to-zero grace period is cluster-wide (config-autoscaler); the per-revision knob that keeps
        // the last pod after traffic stops is the retention period, which is what the spec's field means.
        ("autoscaling.knative.dev/scale-to-zero-pod-retention-period", Seconds(scale.ScaleToZeroGracePeriod)));

    private static OrderedDictionary<string, object?> PodSpec(ExportRequest request, string? runtimeClassName, OrderedDictionary<string, object?> container, List<object> extraVolumes)
    {
        // Secrets live in memory only: an emptyDir with medium Memory is a tmpfs inside the TEE's memory.
        var volumes = new List<object> { ContainerSecurity.MemoryVolume(SecretsVolume, "16Mi") };
        volumes.AddRange(extraVolumes);
        return Map.Of(
            ("runtimeClassName", runtimeClassName),
            ("containerConcurrency", request.Function.Scale.ContainerConcurrency),
            // The function needs no Kubernetes API, and under Kata the policy refuses the token's mount (a directory of
            // host-written files is one more place a program could be found).
            ("automountServiceAccountToken", false),
            ("enableServiceLinks", false),
            ("containers", new List<object> { container }),
            ("volumes", volumes));
    }

    private static OrderedDictionary<string, object?> Container(ExportRequest request, IReadOnlyList<string>? command, IReadOnlyList<string>? args, OrderedDictionary<string, object?>? resources)
    {
        var spec = request.Function;
        // The kubelet expands $(NAME) and $$ in these fields; the policy pins the spec's text, so that is what must
        // arrive: written escaped, a value such as "price=$(AMOUNT)" or "$$" reaches the process unchanged.
        var env = spec.Env.OrderBy(e => e.Key, StringComparer.Ordinal)
            .Select(e => (object)Map.Of(("name", e.Key), ("value", KubernetesExpansion.Literal(e.Value)))).ToList();
        return Map.Of(
            ("name", ContainerName),
            ("image", request.Image),
            ("command", command?.Select(c => (object)KubernetesExpansion.Literal(c)).ToList()),
            ("args", args?.Select(a => (object)KubernetesExpansion.Literal(a)).ToList()),
            // One port, as Knative requires: morph-init's TLS listener. queue-proxy's default readiness check is a TCP
            // connect, which TLS does not disturb.
            ("ports", new List<object> { Map.Of(("name", "http1"), ("containerPort", AgentPort)) }),
            ("env", env.Count > 0 ? env : null),
            ("resources", resources),
            // Root, but with no capabilities: morph-init gets its evidence from the guest's interfaces (configfs-tsm,
            // /dev/sev-guest, /dev/tdx_guest, SGX's device nodes), which are root's. Said explicitly, so that Knative's
            // secure-pod-defaults cannot make the container non-root. Without CAP_SYS_PTRACE the app, root too, cannot
            // read the non-dumpable morph-init. Under SGX Gramine confines the enclave's files itself (its /tmp is inside
            // the enclave), so the root file system is left as the runtime makes it.
            ("securityContext", ContainerSecurity.Restricted(runAsNonRoot: false, readOnlyRoot: request.Tee != ExportTee.Sgx)),
            ("volumeMounts", new List<object> { Map.Of(("name", SecretsVolume), ("mountPath", SecretsDirectory)) }));
    }

    /// <summary>The app command inside the image: a program in the bundle is addressed under <see cref="AppDirectory"/>.</summary>
    public static IReadOnlyList<string> AppCommand(FunctionSpec spec)
    {
        var program = spec.Command[0];
        var inBundle = !Path.IsPathRooted(program) && File.Exists(Path.Combine(spec.Bundle, program));
        return [inBundle ? $"{AppDirectory}/{program.Replace('\\', '/').TrimStart('.', '/')}" : program, .. spec.Command.Skip(1)];
    }

    private static void Validate(ExportRequest request)
    {
        if (request.KmsCaSha256.Length != 32)
        {
            throw new ArgumentException("the KMS CA pin must be a SHA-256 (32 bytes, 64 hex digits)");
        }

        KubernetesNames.RequireLabel(request.Namespace, "--namespace");

        if (request.Kms.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"the KMS address must be https, got '{request.Kms}'");
        }

        // A tag can be moved to other content after the fact; only a digest names what was reviewed and measured.
        if (!IsPinnedByDigest(request.Image))
        {
            throw new ArgumentException($"the image must be pinned by digest (name@sha256:<64 hex>), got '{request.Image}'");
        }

        ValidateQueueProxy(request);
    }

    private static void ValidateQueueProxy(ExportRequest request)
    {
        if (request.Tee == ExportTee.Sgx)
        {
            if (request.QueueProxyImage is not null || request.InsecureUnpinnedQueueProxy)
            {
                throw new ArgumentException("the queue-proxy image is pinned by the Kata agent policy, which SGX pods do not have");
            }

            return;
        }

        // queue-proxy runs inside the function's TEE, on its loopback: an image the host chose there is a program of the
        // host's next to the app's plain port and CoCo's local API. Only a test cluster may do without the pin.
        if (request.QueueProxyImage is { } queueProxy)
        {
            if (!IsPinnedByDigest(queueProxy))
            {
                throw new ArgumentException($"the queue-proxy image must be pinned by digest (name@sha256:<64 hex>), got '{queueProxy}'");
            }

            if (request.InsecureUnpinnedQueueProxy)
            {
                throw new ArgumentException("--queue-proxy-image and --insecure-unpinned-queue-proxy exclude each other");
            }
        }
        else if (!request.InsecureUnpinnedQueueProxy)
        {
            throw new ArgumentException(
                "the queue-proxy image must be pinned: pass --queue-proxy-image NAME@sha256:<64 hex> (queue-sidecar-image in Knative's "
                + "config-deployment ConfigMap), or --insecure-unpinned-queue-proxy on a test cluster");
        }
    }

    /// <summary>Whether <paramref name="image"/> is <c>name@sha256:&lt;64 lowercase hex&gt;</c>.</summary>
    public static bool IsPinnedByDigest(string image)
    {
        var at = image.IndexOf("@sha256:", StringComparison.Ordinal);
        return at > 0 && image.Length == at + 8 + 64 && image[(at + 8)..].All(char.IsAsciiHexDigitLower);
    }

    private static string Comment(IEnumerable<string> lines) => string.Concat(lines.Select(l => "# " + l + "\n"));

    private static string Number(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Seconds(TimeSpan span) => Number(span.TotalSeconds) + "s";
}
