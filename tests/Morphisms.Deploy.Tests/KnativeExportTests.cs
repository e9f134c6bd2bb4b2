using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Models;
using Morphisms.Deploy.Knative;
using Morphisms.Serving.Spec;
using YamlDotNet.RepresentationModel;

namespace Morphisms.Deploy.Tests;

public sealed class KnativeExportTests : IDisposable
{
    private const string Image = "registry.example/fn@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private const string QueueProxyImage = "gcr.io/knative-releases/queue@sha256:1111111111111111111111111111111111111111111111111111111111111111";
    private static readonly byte[] Pin = SHA256.HashData("kms-ca"u8);
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-export-").FullName;

    public KnativeExportTests()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "bundle"));
        File.WriteAllText(Path.Combine(_dir, "bundle", "app"), "#!/bin/sh\n");
        File.WriteAllText(Path.Combine(_dir, "function.yaml"), """
            name: hello
            tee: snp
            bundle: bundle
            command: [app, --greeting, hi]
            port: 9000
            env: { MODE: prod }
            secrets: secret/data/hello
            scale: { min: 1, max: 5, initial: 2, target: 10, containerConcurrency: 4, stableWindow: 30s, scaleToZeroGracePeriod: 45s }
            traffic: [{ revision: latest, percent: 100 }]
            """);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ExportRequest Request(ExportTee tee) => new()
    {
        Function = FunctionSpecLoader.Load(_dir), Tee = tee, Kms = new Uri("https://kms.morph.svc:8200"), KmsCaSha256 = Pin, Image = Image,
        QueueProxyImage = tee == ExportTee.Sgx ? null : QueueProxyImage,
    };

    [Theory]
    [InlineData(ExportTee.Snp, "kata-qemu-snp", 32)]
    [InlineData(ExportTee.Tdx, "kata-qemu-tdx", 48)]
    public void KataServiceParsesIntoTypedObjectsAndCarriesMeasuredInitdata(ExportTee tee, string runtimeClass, int digestLength)
    {
        var result = KnativeExporter.Export(Request(tee));
        var yaml = result.Files.Single(f => f.Path == "service.yaml").Content;
        KnativeSchema.Check(yaml);
        Assert.Contains("kubernetes.podspec-runtimeclassname", yaml);

        var service = KubernetesYaml.Deserialize<KnativeService>(yaml);
        Assert.Equal("serving.knative.dev/v1", service.ApiVersion);
        Assert.Equal("hello", service.Metadata.Name);
        var template = service.Spec.Template;
        Assert.Equal(runtimeClass, template.Spec.RuntimeClassName);
        Assert.Equal(4, template.Spec.ContainerConcurrency);
        var annotations = template.Metadata.Annotations;
        Assert.Equal("1", annotations["autoscaling.knative.dev/min-scale"]);
        Assert.Equal("5", annotations["autoscaling.knative.dev/max-scale"]);
        Assert.Equal("2", annotations["autoscaling.knative.dev/initial-scale"]);
        Assert.Equal("10", annotations["autoscaling.knative.dev/target"]);
        Assert.Equal("30s", annotations["autoscaling.knative.dev/window"]);
        Assert.Equal("45s", annotations["autoscaling.knative.dev/scale-to-zero-pod-retention-period"]);

        var container = Assert.Single(template.Spec.Containers);
        Assert.Equal(Image, container.Image);
        Assert.Equal(["/morph/morph-init"], container.Command);
        Assert.Equal(
            ["--kms", "https://kms.morph.svc:8200/", "--function", "hello", "--tee", tee.ToString().ToLowerInvariant(), "--port", "8443", "--app-port", "9000",
             "--secrets-dir", "/run/morph/secrets", "--secret-path", "secret/data/hello", "--initdata", "env:MORPH_INITDATA", "--", "/app/app", "--greeting", "hi"],
            container.Args);
        var initdataVariable = container.Env.Single(e => e.Name == KnativeExporter.InitdataVariable);
        Assert.Equal($"metadata.annotations['{Initdata.Annotation}']", initdataVariable.ValueFrom.FieldRef.FieldPath);
        Assert.Equal("prod", container.Env.Single(e => e.Name == "MODE").Value);
        Assert.Contains("kubernetes.podspec-fieldref", yaml);
        Assert.Equal(8443, Assert.Single(container.Ports).ContainerPort);
        Assert.Equal("Memory", template.Spec.Volumes.Single(v => v.Name == "morph-secrets").EmptyDir.Medium);
        Assert.True(Assert.Single(service.Spec.Traffic!).LatestRevision);

        // The annotation decodes to the exported initdata.toml, and its digest is what the report's field holds.
        var document = Initdata.Decode(annotations[Initdata.Annotation]);
        Assert.Equal(result.Files.Single(f => f.Path == "initdata.toml").Content, document);
        Assert.Contains($"kms_ca_sha256 = \"{Convert.ToHexStringLower(Pin)}\"", document);
        var digest = tee == ExportTee.Snp ? SHA256.HashData(Encoding.UTF8.GetBytes(document)) : SHA384.HashData(Encoding.UTF8.GetBytes(document));
        Assert.Equal(digestLength, digest.Length);
        Assert.Contains(Convert.ToHexStringLower(digest), result.Measured[0]);

        // What to register: the digest, and the guest image's values the KMS requires beside it.
        var fields = tee == ExportTee.Snp ? new[] { "snp.host_data", "snp.measurements", "snp.minimum_tcb" } : ["tdx.mrconfigid", "tdx.mrtds", "tdx.rtmr1", "tdx.rtmr2"];
        Assert.All(fields, f => Assert.Contains(f, result.Measured[1], StringComparison.Ordinal));

        // The agent reads where the KMS names at login, so the spec's own path must be registered too.
        Assert.Contains("register secret_path secret/data/hello too", result.Measured[2], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ExportTee.Snp, "SNP HOST_DATA", 32)]
    [InlineData(ExportTee.Tdx, "TDX MRCONFIGID", 48)]
    public void ExportedInitdata_IsWhatMorphInitAccepts(ExportTee tee, string fieldName, int fieldLength)
    {
        var result = KnativeExporter.Export(Request(tee));
        var service = KubernetesYaml.Deserialize<KnativeService>(result.Files.Single(f => f.Path == "service.yaml").Content);
        var annotation = service.Spec.Template.Metadata.Annotations[Initdata.Annotation];

        // What the agent reads from MORPH_INITDATA (the annotation via the downward API), checked against the field the
        // host stamps: the digest Kata computes, which the exporter printed.
        var initdata = Agent.Evidence.KataInitdata.Load($"env:{KnativeExporter.InitdataVariable}", name => name == KnativeExporter.InitdataVariable ? annotation : null);
        var digest = Initdata.Digest(Initdata.Decode(annotation), tee);
        Assert.Equal(fieldLength, digest.Length);
        Assert.Equal(Pin, initdata.VerifyAgainst(new Agent.Evidence.LaunchField(fieldName, digest), "hello", new Uri("https://kms.morph.svc:8200")));
        Assert.Equal(Image, initdata.Image);
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void KataInitdataCarriesAnAgentPolicyPinningTheFunctionsImageArgsAndEnv(ExportTee tee)
    {
        var result = KnativeExporter.Export(Request(tee));
        var service = KubernetesYaml.Deserialize<KnativeService>(result.Files.Single(f => f.Path == "service.yaml").Content);
        var container = Assert.Single(service.Spec.Template.Spec.Containers);
        var document = Initdata.Decode(service.Spec.Template.Metadata.Annotations[Initdata.Annotation]);

        // The policy pins exactly what the Service asks the agent to run: image digest, command + args, the spec's env.
        var function = PolicyData.Containers(document).GetProperty(KnativeExporter.ContainerName);
        Assert.Equal(Image, function.GetProperty("image").GetString());
        Assert.Equal([.. container.Command, .. container.Args], function.GetProperty("args").EnumerateArray().Select(a => a.GetString()!));
        Assert.Equal("prod", function.GetProperty("env").GetProperty("MODE").GetString());
        Assert.False(function.GetProperty("any_env").GetBoolean());
        Assert.Contains(KnativeExporter.InitdataVariable, function.GetProperty("env_names").EnumerateArray().Select(n => n.GetString()));
        Assert.Equal(
            [KnativeExporter.SecretsDirectory, "/tmp"],
            function.GetProperty("memory_volumes").EnumerateArray().Select(v => v.GetProperty("destination").GetString()).Order(StringComparer.Ordinal));
        Assert.False(service.Spec.Template.Spec.AutomountServiceAccountToken);

        // The host gets no shell, no stdin, no new policy; copies and containers only through the rules.
        var policy = PolicyData.Policy(document);
        Assert.StartsWith("package agent_policy\n", policy, StringComparison.Ordinal);
        foreach (var denied in new[] { "ExecProcessRequest", "WriteStreamRequest", "SetPolicyRequest", "CopyFileRequest", "CreateContainerRequest", "SetGuestDateTimeRequest" })
        {
            Assert.Contains($"default {denied} := false\n", policy, StringComparison.Ordinal);
            Assert.DoesNotContain($"default {denied} := true", policy, StringComparison.Ordinal);
        }

        // Knative's queue-proxy, beside the function in its TEE: its image pinned, and nothing said to be insecure.
        Assert.Equal(QueueProxyImage, PolicyData.Containers(document).GetProperty(KnativeExporter.QueueProxyName).GetProperty("image").GetString());
        Assert.DoesNotContain(result.Measured, l => l.StartsWith("WARNING", StringComparison.Ordinal) || l.StartsWith("INSECURE", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void QueueProxyIsPinnedOrTheExportIsLoudlyInsecure(ExportTee tee)
    {
        // No image for the container Knative adds inside the TEE: no export, unless the insecure flag says so.
        var refused = Assert.Throws<ArgumentException>(() => KnativeExporter.Export(Request(tee) with { QueueProxyImage = null }));
        Assert.Contains("--queue-proxy-image", refused.Message, StringComparison.Ordinal);
        Assert.Contains("--insecure-unpinned-queue-proxy", refused.Message, StringComparison.Ordinal);
        Assert.Contains("exclude each other", Assert.Throws<ArgumentException>(() => KnativeExporter.Export(Request(tee) with { InsecureUnpinnedQueueProxy = true })).Message, StringComparison.Ordinal);

        var insecure = KnativeExporter.Export(Request(tee) with { QueueProxyImage = null, InsecureUnpinnedQueueProxy = true });
        var document = insecure.Files.Single(f => f.Path == "initdata.toml").Content;
        Assert.Equal(JsonValueKind.Null, PolicyData.Containers(document).GetProperty(KnativeExporter.QueueProxyName).GetProperty("image").ValueKind);
        Assert.Contains(insecure.Measured, l => l.StartsWith("INSECURE (--insecure-unpinned-queue-proxy): queue-proxy's image is not pinned", StringComparison.Ordinal));
        Assert.Contains("# INSECURE (--insecure-unpinned-queue-proxy)", insecure.Files.Single(f => f.Path == "service.yaml").Content, StringComparison.Ordinal);

        // SGX pods have no agent policy to pin it in.
        Assert.Throws<ArgumentException>(() => KnativeExporter.Export(Request(ExportTee.Sgx) with { InsecureUnpinnedQueueProxy = true }));
        Assert.Throws<ArgumentException>(() => KnativeExporter.Export(Request(ExportTee.Sgx) with { QueueProxyImage = QueueProxyImage }));
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void QueueProxyForwardsOnlyToMorphInitsTlsPort(ExportTee tee)
    {
        // The insecure export too: the image is a test cluster's choice, where requests go is not.
        foreach (var request in new[] { Request(tee), Request(tee) with { QueueProxyImage = null, InsecureUnpinnedQueueProxy = true } })
        {
            var result = KnativeExporter.Export(request);
            var queueProxy = PolicyData.Containers(result.Files.Single(f => f.Path == "initdata.toml").Content).GetProperty(KnativeExporter.QueueProxyName);

            // USER_PORT is where queue-proxy sends requests: morph-init's TLS port, the function container's only port
            // (Knative sets it from there), and never the app's plain port or CoCo's local API on loopback.
            var service = KubernetesYaml.Deserialize<KnativeService>(result.Files.Single(f => f.Path == "service.yaml").Content);
            var port = Assert.Single(Assert.Single(service.Spec.Template.Spec.Containers).Ports).ContainerPort;
            Assert.Equal(port.ToString(System.Globalization.CultureInfo.InvariantCulture), queueProxy.GetProperty("env").GetProperty("USER_PORT").GetString());
            Assert.Equal("8443", queueProxy.GetProperty("env").GetProperty("USER_PORT").GetString());
            Assert.Single(queueProxy.GetProperty("env").EnumerateObject());

            // Every other variable only by name, and only queue-proxy's own: no "any environment".
            Assert.False(queueProxy.GetProperty("any_env").GetBoolean());
            var names = queueProxy.GetProperty("env_names").EnumerateArray().Select(n => n.GetString()!).ToList();
            Assert.DoesNotContain("USER_PORT", names);
            Assert.All(["SERVING_REVISION", "QUEUE_SERVING_PORT", "CONTAINER_CONCURRENCY", "SERVING_READINESS_PROBE", "OBSERVABILITY_CONFIG", "KO_DATA_PATH", "PATH"], n => Assert.Contains(n, names));
            Assert.All(["LD_PRELOAD", "MORPH_INITDATA", "PORT"], n => Assert.DoesNotContain(n, names));
        }

        // The policy refuses a pinned variable with another value, whatever the names allow.
        var policy = PolicyData.Policy(KnativeExporter.Export(Request(tee)).Files.Single(f => f.Path == "initdata.toml").Content);
        Assert.Contains("\n    not morph_pinned(c, name)\n    name in c.env_names\n", PolicyData.Rule(policy, "morph_variable_value", "c.env_names"), StringComparison.Ordinal);
        Assert.Contains("\n    every name, value in c.env {\n        concat(\"=\", [name, value]) in env\n", PolicyData.Rule(policy, "morph_env"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void TheLaunchDigestChangesWithThePolicyAlone(ExportTee tee)
    {
        (string Morph, string Digest) Launch(ExportResult result)
        {
            var document = result.Files.Single(f => f.Path == "initdata.toml").Content;
            var morph = PolicyData.Entry(document, Initdata.MorphEntry);
            return (morph, Convert.ToHexStringLower(Initdata.Digest(document, tee)));
        }

        var baseline = Launch(KnativeExporter.Export(Request(tee)));
        var spec = FunctionSpecLoader.Load(_dir);
        var changes = new[]
        {
            // The env only reaches the policy (morph.toml does not carry it): a different value is a different report.
            Request(tee) with { Function = spec with { Env = new Dictionary<string, string> { ["MODE"] = "debug" } } },
            Request(tee) with { Function = spec with { Command = [.. spec.Command, "--verbose"] } },
            Request(tee) with { QueueProxyImage = "gcr.io/knative-releases/queue@sha256:2222222222222222222222222222222222222222222222222222222222222222" },
        };
        foreach (var change in changes)
        {
            var changed = Launch(KnativeExporter.Export(change));
            Assert.Equal(baseline.Morph, changed.Morph);
            Assert.NotEqual(baseline.Digest, changed.Digest);
        }
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void ThePolicyLetsTheHostRunNoProgramOfItsOwnInTheTee(ExportTee tee)
    {
        var document = KnativeExporter.Export(Request(tee) with { QueueProxyImage = QueueProxyImage }).Files.Single(f => f.Path == "initdata.toml").Content;
        var policy = PolicyData.Policy(document);

        // The pause container runs the pause binary alone, with no variable but PATH and HOSTNAME: not a copied file
        // named as its argv (it shares the pod's loopback, and with it the attestation agent's local API).
        var pause = PolicyData.Rule(policy, "CreateContainerRequest", "== \"sandbox\"");
        Assert.Contains("\n    input.OCI.Process.Args == [\"/pause\"]\n", pause, StringComparison.Ordinal);
        Assert.Contains("\n    morph_env(morph_pause, morph_list(object.get(input.OCI.Process, \"Env\", null)))\n", pause, StringComparison.Ordinal);
        Assert.Contains("morph_pause := {\"env\": {}, \"env_names\": [\"HOSTNAME\", \"PATH\"], \"env_patterns\": [], \"any_env\": false}\n", policy, StringComparison.Ordinal);

        // Its copied files (resolv.conf) only read-only and noexec, as containerd mounts them; no other container's
        // copied-file mount is the pause container's.
        Assert.Contains("\n        morph_pause_mount(m)\n", pause, StringComparison.Ordinal);
        Assert.DoesNotContain("morph_mount_common(m)\n    }", pause, StringComparison.Ordinal);
        var pauseMounts = PolicyData.Rule(policy, "morph_pause_mount", "morph_copied_mount(m)");
        Assert.Contains("\n    \"ro\" in m.options\n", pauseMounts, StringComparison.Ordinal);
        Assert.Contains("\n    \"noexec\" in m.options\n", pauseMounts, StringComparison.Ordinal);
        Assert.DoesNotContain("morph_copied_file", PolicyData.Rule(policy, "morph_mount_common"), StringComparison.Ordinal);

        // A copied file can never be executed: no execute bit for anyone, no setuid or setgid (06111).
        var copy = PolicyData.Rule(policy, "CopyFileRequest");
        Assert.Contains("\n    bits.and(input.file_mode, 3145) == 0\n", copy, StringComparison.Ordinal);
        Assert.Equal(3145, Convert.ToInt32("6111", 8)); // 06111 in decimal, as Rego has no octal literal

        // Every container's argv is pinned, queue-proxy's to its image's entrypoint (Knative gives it no command).
        Assert.DoesNotContain("is_null(c.args)", policy, StringComparison.Ordinal);
        Assert.Contains("\n    morph_args(c, input.OCI.Process.Args)\n", PolicyData.Rule(policy, "CreateContainerRequest", "== \"container\""), StringComparison.Ordinal);
        var containers = PolicyData.Containers(document);
        Assert.Equal(["/ko-app/queue"], containers.GetProperty(KnativeExporter.QueueProxyName).GetProperty("args").EnumerateArray().Select(a => a.GetString()));
        Assert.All(containers.EnumerateObject(), c => Assert.True(c.Value.GetProperty("args").GetArrayLength() > 0, $"{c.Name}'s argv is not pinned"));
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void ThePolicyKeepsLoopbackOutOfTheHostsReach(ExportTee tee)
    {
        var policy = PolicyData.Policy(KnativeExporter.Export(Request(tee)).Files.Single(f => f.Path == "initdata.toml").Content);

        // The agent finds the link by hardware address: lo's (all zeros) or none selects lo whatever the name.
        var update = PolicyData.Rule(policy, "UpdateInterfaceRequest");
        Assert.Contains("\n    input.interface.name != \"lo\"\n", update, StringComparison.Ordinal);
        Assert.Contains("\n    regex.match(\"[1-9A-Fa-f]\", input.interface.hwAddr)\n", update, StringComparison.Ordinal);
        Assert.Contains("not regex.match(morph_loopback, ip.address)", update, StringComparison.Ordinal);
        var routes = PolicyData.Rule(policy, "UpdateRoutesRequest");
        Assert.Contains("route.device != \"lo\"", routes, StringComparison.Ordinal);
        Assert.Contains("every field in [\"dest\", \"gateway\", \"source\"]", routes, StringComparison.Ordinal);
        Assert.Contains("not regex.match(morph_loopback, object.get(route, field, \"\"))", routes, StringComparison.Ordinal);

        // The Rego string, unescaped, is the regular expression the agent applies: it must know loopback when it sees it.
        const string Marker = "morph_loopback := \"";
        var at = policy.IndexOf(Marker, StringComparison.Ordinal);
        Assert.True(at > 0, "the policy has no morph_loopback");
        var literal = policy[(at + Marker.Length)..policy.IndexOf('\n', at)].TrimEnd('"');
        var loopback = new System.Text.RegularExpressions.Regex(literal.Replace("\\\\", "\\", StringComparison.Ordinal));
        Assert.All(["127.0.0.1", "127.1.2.3", "127.0.0.0/8", "::1", "::1/128", "0:0:0:0:0:0:0:1", "::0001", "::FFFF:127.0.0.1"], a => Assert.Matches(loopback, a));
        Assert.All(["10.0.0.1", "0.0.0.0/0", "fe80::1", "::10", "2001:db8::1", "", "::"], a => Assert.DoesNotMatch(loopback, a));
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void ThePolicyGivesNoContainerADeviceASysctlOrMknodOfTheHostsChoosing(ExportTee tee)
    {
        var result = KnativeExporter.Export(Request(tee) with { QueueProxyImage = QueueProxyImage });
        var policy = PolicyData.Policy(result.Files.Single(f => f.Path == "initdata.toml").Content);
        var common = PolicyData.Rule(policy, "morph_common");

        // No device cgroup rule: with one (and a node) the host could open /dev/sev-guest or /dev/tdx_guest to a
        // container and get reports carrying this pod's launch data. The Kata shim sends none; nodes stay refused too.
        Assert.Contains("\n    count(morph_list(object.get(morph_object(object.get(input.OCI.Linux, \"Resources\", null)), \"Devices\", null))) == 0\n", common, StringComparison.Ordinal);
        Assert.Contains("\n    count(morph_list(object.get(input.OCI.Linux, \"Devices\", null))) == 0\n", common, StringComparison.Ordinal);

        // Sysctls: only containerd's two, each with containerd's value; route_localnet (loopback reachable from the
        // network, where the app serves plaintext) or any other is refused.
        Assert.Contains("\n    every name, value in morph_object(object.get(input.OCI.Linux, \"Sysctl\", null)) {\n        morph_sysctls[name] == value\n    }\n", common, StringComparison.Ordinal);
        var sysctls = JsonSerializer.Deserialize<Dictionary<string, string>>(Definition(policy, "morph_sysctls"))!;
        Assert.Equal(
            new Dictionary<string, string> { ["net.ipv4.ip_unprivileged_port_start"] = "0", ["net.ipv4.ping_group_range"] = "0 2147483647" },
            sysctls);
        Assert.DoesNotContain(sysctls.Keys, k => k.Contains("route_localnet", StringComparison.Ordinal));

        // MKNOD for no container of the pod, only for the pause container, which Kubernetes cannot take it from.
        Assert.Contains("\n        every cap in morph_list(object.get(caps, kind, null)) {\n            morph_capability(cap) in capabilities\n", common, StringComparison.Ordinal);
        var capabilities = JsonSerializer.Deserialize<string[]>("[" + Definition(policy, "morph_capabilities").Trim('{', '}') + "]")!;
        Assert.DoesNotContain("MKNOD", capabilities);
        Assert.DoesNotContain("SYS_ADMIN", capabilities);
        Assert.Contains("NET_BIND_SERVICE", capabilities);
        Assert.Equal("morph_capabilities | {\"MKNOD\"}", Definition(policy, "morph_pause_capabilities"));
        Assert.Contains("\n    morph_common(morph_capabilities)\n", PolicyData.Rule(policy, "CreateContainerRequest", "== \"container\""), StringComparison.Ordinal);
        Assert.Contains("\n    morph_common(morph_pause_capabilities)\n", PolicyData.Rule(policy, "CreateContainerRequest", "== \"sandbox\""), StringComparison.Ordinal);

        // Consistent with the Service: the function drops every capability, so the policy's refusal costs it nothing.
        var service = KubernetesYaml.Deserialize<KnativeService>(result.Files.Single(f => f.Path == "service.yaml").Content);
        Assert.Equal(["ALL"], Assert.Single(service.Spec.Template.Spec.Containers).SecurityContext.Capabilities.Drop);
    }

    // The right-hand side of a one-line top-level definition `name := value` of the policy.
    private static string Definition(string policy, string name)
    {
        var line = policy.Split('\n').Single(l => l.StartsWith(name + " := ", StringComparison.Ordinal));
        return line[(name.Length + 4)..];
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    [InlineData(ExportTee.Sgx)]
    public void TheFunctionRunsWithNoPrivilegesAndNoServiceAccountToken(ExportTee tee)
    {
        var result = KnativeExporter.Export(Request(tee));
        var yaml = result.Files.Single(f => f.Path == "service.yaml").Content;
        KnativeSchema.Check(yaml);
        var spec = KubernetesYaml.Deserialize<KnativeService>(yaml).Spec.Template.Spec;
        Assert.False(spec.AutomountServiceAccountToken);

        // All in the container's securityContext: Knative takes a pod's only with its podspec-securitycontext flag.
        Assert.Null(spec.SecurityContext);
        var container = Assert.Single(spec.Containers);
        var security = container.SecurityContext;
        Assert.False(security.AllowPrivilegeEscalation);
        Assert.Equal(["ALL"], security.Capabilities.Drop);
        Assert.Null(security.Capabilities.Add);
        Assert.Equal("RuntimeDefault", security.SeccompProfile.Type);

        // morph-init gets its evidence from the guest's interfaces (configfs-tsm, /dev/sgx_enclave), which are root's:
        // root without capabilities, said explicitly so that Knative's secure-pod-defaults cannot make it non-root.
        Assert.False(security.RunAsNonRoot);
        Assert.Null(security.RunAsUser);
        if (tee == ExportTee.Sgx)
        {
            // Gramine confines the enclave's files itself (its /tmp is in the enclave); the root is left as it is.
            Assert.Null(security.ReadOnlyRootFilesystem);
            return;
        }

        // Under Kata, as on a serving host: a read-only root, /tmp and the secrets in memory, both admitted by the policy.
        Assert.True(security.ReadOnlyRootFilesystem);
        var tmp = container.VolumeMounts.Single(m => m.MountPath == "/tmp");
        Assert.Equal("Memory", spec.Volumes.Single(v => v.Name == tmp.Name).EmptyDir.Medium);
        var pinned = PolicyData.Containers(result.Files.Single(f => f.Path == "initdata.toml").Content).GetProperty(KnativeExporter.ContainerName);
        Assert.Contains(pinned.GetProperty("memory_volumes").EnumerateArray(), v => v.GetProperty("destination").GetString() == "/tmp" && v.GetProperty("volume").GetString() == tmp.Name);
    }

    [Fact]
    public void SgxExportHasDevicesAesmdAndAMeasuredGramineManifest()
    {
        var result = KnativeExporter.Export(Request(ExportTee.Sgx));
        var yaml = result.Files.Single(f => f.Path == "service.yaml").Content;
        KnativeSchema.Check(yaml);
        var service = KubernetesYaml.Deserialize<KnativeService>(yaml);
        var spec = service.Spec.Template.Spec;
        Assert.Null(spec.RuntimeClassName);
        var container = Assert.Single(spec.Containers);
        Assert.Equal("1", container.Resources.Limits["sgx.intel.com/enclave"].ToString());
        Assert.Equal("1", container.Resources.Limits["sgx.intel.com/provision"].ToString());
        Assert.Contains(container.VolumeMounts, m => m.MountPath == "/var/run/aesmd");
        Assert.Equal("/var/run/aesmd", spec.Volumes.Single(v => v.Name == "aesmd").HostPath.Path);

        var manifest = GramineToml.TopLevelKeys(result.Files.Single(f => f.Path == "hello.manifest.template").Content);
        foreach (var key in Gramine.GramineManifest.RequiredKeys)
        {
            Assert.True(manifest.ContainsKey(key), $"manifest lacks {key}");
        }

        Assert.Equal("\"/morph/morph-init\"", manifest["libos.entrypoint"]);
        Assert.Equal("\"dcap\"", manifest["sgx.remote_attestation"]);
        Assert.Equal("false", manifest["sgx.debug"]);
        Assert.Equal($"\"{Convert.ToHexStringLower(Pin)}\"", manifest["loader.env.MORPH_KMS_CA_SHA256"]);
        Assert.Equal("\"https://kms.morph.svc:8200/\"", manifest["loader.env.MORPH_KMS_URL"]);
        Assert.Contains("\"--tee\", \"gramine\"", manifest["loader.argv"]);

        // DNS: Gramine makes /etc/resolv.conf (from the host's, sanitized) only when asked; without it the KMS URL's
        // name does not resolve in the enclave.
        Assert.Equal("true", manifest["sys.enable_extra_runtime_domain_names_conf"]);

        // Gramine's TCP is the host's: the app is reached on a UNIX domain socket (encrypted between its processes).
        Assert.Contains("\"--app-socket\", \"/run/morph/app.sock\"", manifest["loader.argv"]);
        Assert.DoesNotContain("--app-port", manifest["loader.argv"]);
        // The agent writes the secrets and the app (another Gramine process) reads them: Gramine's tmpfs is private
        // to each process, so the directory must be an encrypted mount sealed to this enclave.
        Assert.DoesNotContain("type = \"tmpfs\", path = \"/run/morph/secrets\"", manifest["fs.mounts"]);
        Assert.Contains("{ type = \"encrypted\", path = \"/run/morph/secrets\", uri = \"file:/run/morph/secrets\", key_name = \"_sgx_mrenclave\" }", manifest["fs.mounts"]);
        Assert.DoesNotContain("fs.insecure__keys", result.Files.Single(f => f.Path == "hello.manifest.template").Content);
        Assert.DoesNotContain(result.Files.Single(f => f.Path == "hello.manifest.template").Content.Split('\n'), l => !l.StartsWith('#') && l.Contains("passthrough", StringComparison.Ordinal));
        Assert.Contains("ENTRYPOINT [\"gramine-sgx\", \"hello\"]", result.Files.Single(f => f.Path == "Dockerfile").Content);
    }

    [Theory]
    [InlineData("env", "{{ cycler.__init__.__globals__.os.popen('id').read() }}", "env.MODE")]
    [InlineData("env", "before {% include '/etc/passwd' %} after", "env.MODE")]
    [InlineData("env", "x{#comment#}", "env.MODE")]
    [InlineData("command", "{{ 7 * 7 }}", "command[2]")]
    public void TheGramineTemplateRefusesJinjaSyntaxInValuesItPastes(string where, string value, string field)
    {
        // gramine-manifest renders the template with Jinja2 during docker build: the value would be evaluated there.
        var spec = FunctionSpecLoader.Load(_dir);
        spec = where == "env"
            ? spec with { Env = new Dictionary<string, string> { ["MODE"] = value } }
            : spec with { Command = [spec.Command[0], spec.Command[1], value] };
        var error = Assert.Throws<ArgumentException>(() => KnativeExporter.Export(Request(ExportTee.Sgx) with { Function = spec }));
        Assert.StartsWith(field + ": ", error.Message, StringComparison.Ordinal);
        Assert.Contains("Jinja2", error.Message, StringComparison.Ordinal);

        // Nothing to render under Kata: the same value is exported there.
        KnativeExporter.Export(Request(ExportTee.Snp) with { Function = spec });
    }

    [Fact]
    public void TheGramineTemplateKeepsBracesThatAreNotJinja()
    {
        var spec = FunctionSpecLoader.Load(_dir) with { Env = new Dictionary<string, string> { ["JSON"] = "{\"a\": {\"b\": 1}}", ["SHELL_VAR"] = "${HOME}" } };
        var manifest = GramineToml.TopLevelKeys(KnativeExporter.Export(Request(ExportTee.Sgx) with { Function = spec }).Files.Single(f => f.Path == "hello.manifest.template").Content);
        // The TOML strings (JSON escapes), read back, are the spec's values.
        Assert.Equal(spec.Env["JSON"], JsonSerializer.Deserialize<string>(manifest["loader.env.JSON"]));
        Assert.Equal(spec.Env["SHELL_VAR"], JsonSerializer.Deserialize<string>(manifest["loader.env.SHELL_VAR"]));
    }

    [Theory]
    [InlineData(ExportTee.Snp)]
    [InlineData(ExportTee.Tdx)]
    public void WhatTheKubeletExpandsIsWhatThePolicyPins(ExportTee tee)
    {
        // Text the kubelet would rewrite: a reference to a variable the container has, an escaped '$', a lone one.
        var spec = FunctionSpecLoader.Load(_dir);
        spec = spec with
        {
            Command = [.. spec.Command, "--price=$(MODE)", "$$", "cost$", "$(UNDEFINED)"],
            Env = new Dictionary<string, string> { ["MODE"] = "prod", ["TEMPLATE"] = "$(MODE)-$$HOME" },
        };
        var result = KnativeExporter.Export(Request(tee) with { Function = spec });
        var container = Assert.Single(KubernetesYaml.Deserialize<KnativeService>(result.Files.Single(f => f.Path == "service.yaml").Content).Spec.Template.Spec.Containers);
        var pinned = PolicyData.Containers(result.Files.Single(f => f.Path == "initdata.toml").Content).GetProperty(KnativeExporter.ContainerName);

        // The environment as the kubelet builds it (each value expanded against the variables before it), then the
        // argv expanded against that: what the agent receives must be exactly what the policy pins.
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var variable in container.Env.Where(e => e.Value is not null))
        {
            environment[variable.Name] = KubeletExpand(variable.Value, environment);
        }

        Assert.Equal("prod", environment["MODE"]);
        Assert.Equal("$(MODE)-$$HOME", environment["TEMPLATE"]);
        Assert.Equal(spec.Env["TEMPLATE"], pinned.GetProperty("env").GetProperty("TEMPLATE").GetString());
        var argv = container.Command.Concat(container.Args).Select(a => KubeletExpand(a, environment)).ToList();
        Assert.Equal(pinned.GetProperty("args").EnumerateArray().Select(a => a.GetString()!), argv);
        Assert.Equal(["--price=$(MODE)", "$$", "cost$", "$(UNDEFINED)"], argv.TakeLast(4));
    }

    // Kubernetes' expansion of $(NAME) in command, args and env values (k8s.io/kubernetes third_party/forked/golang/expansion):
    // "$$" is "$", "$(NAME)" the variable's value or itself when undefined, any other '$' stays.
    private static string KubeletExpand(string input, IReadOnlyDictionary<string, string> variables)
    {
        var output = new StringBuilder();
        var checkpoint = 0;
        for (var cursor = 0; cursor < input.Length; cursor++)
        {
            if (input[cursor] != '$' || cursor + 1 >= input.Length)
            {
                continue;
            }

            output.Append(input, checkpoint, cursor - checkpoint);
            var rest = input[(cursor + 1)..];
            var advance = 1;
            switch (rest[0])
            {
                case '$':
                    output.Append('$');
                    break;
                case '(' when rest.IndexOf(')', StringComparison.Ordinal) is var close and > 0:
                    var name = rest[1..close];
                    output.Append(variables.TryGetValue(name, out var value) ? value : $"$({name})");
                    advance = close + 1;
                    break;
                default:
                    output.Append('$').Append(rest[0]);
                    break;
            }

            cursor += advance;
            checkpoint = cursor + 1;
        }

        return output.Append(input, checkpoint, input.Length - checkpoint).ToString();
    }

    [Theory]
    [InlineData("Bad NS")]
    [InlineData("-ns")]
    [InlineData("a.b")]
    public void TheNamespaceMustBeADnsLabel(string ns) =>
        Assert.Contains("--namespace must be a DNS label", Assert.Throws<ArgumentException>(() => KnativeExporter.Export(Request(ExportTee.Snp) with { Namespace = ns })).Message);

    [Theory]
    [InlineData("registry.example/fn:latest")]
    [InlineData("registry.example/fn@sha256:abc")]
    public void ImagesMustBePinnedByDigest(string image) =>
        Assert.Contains("pinned by digest", Assert.Throws<ArgumentException>(() => KnativeExporter.Export(Request(ExportTee.Snp) with { Image = image })).Message);

    [Fact]
    public async Task CliWritesTheFilesAndRejectsBadInput()
    {
        var output = Path.Combine(_dir, "out");
        var (code, stdout, stderr) = await SigStructTests.Run("export", "knative", _dir, "--kms", "https://kms:8200", "--kms-ca-sha256", Convert.ToHexStringLower(Pin), "--image", Image, "--queue-proxy-image", QueueProxyImage, "-o", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("HOST_DATA", stdout);
        Assert.DoesNotContain("WARNING", stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(output, "service.yaml")));
        Assert.True(File.Exists(Path.Combine(output, "initdata.toml")));

        // No pinned queue-proxy: refused, naming both ways out; the insecure flag exports and warns.
        var (unpinned, _, unpinnedErr) = await SigStructTests.Run("export", "knative", _dir, "--kms", "https://kms:8200", "--kms-ca-sha256", Convert.ToHexStringLower(Pin), "--image", Image, "-o", output);
        Assert.Equal(2, unpinned);
        Assert.Contains("--queue-proxy-image", unpinnedErr);
        Assert.Contains("--insecure-unpinned-queue-proxy", unpinnedErr);
        var (insecure, insecureOut, insecureErr) = await SigStructTests.Run("export", "knative", _dir, "--kms", "https://kms:8200", "--kms-ca-sha256", Convert.ToHexStringLower(Pin), "--image", Image, "--insecure-unpinned-queue-proxy", "-o", output);
        Assert.True(insecure == 0, insecureErr);
        Assert.Contains("morph: WARNING: --insecure-unpinned-queue-proxy", insecureErr);
        Assert.Contains("INSECURE (--insecure-unpinned-queue-proxy)", insecureOut);

        var (badPin, _, pinErr) = await SigStructTests.Run("export", "knative", _dir, "--kms", "https://kms:8200", "--kms-ca-sha256", "abcd", "--image", Image);
        Assert.Equal(2, badPin);
        Assert.Contains("64 hex digits", pinErr);
        var (badQueue, _, queueErr) = await SigStructTests.Run("export", "knative", _dir, "--kms", "https://kms:8200", "--kms-ca-sha256", Convert.ToHexStringLower(Pin), "--image", Image, "--queue-proxy-image", "queue:latest");
        Assert.Equal(2, badQueue);
        Assert.Contains("queue-proxy image must be pinned by digest", queueErr);
        var (plain, _, plainErr) = await SigStructTests.Run("export", "knative", _dir, "--kms", "http://kms:8200", "--kms-ca-sha256", Convert.ToHexStringLower(Pin), "--image", Image, "--queue-proxy-image", QueueProxyImage);
        Assert.Equal(2, plain);
        Assert.Contains("https", plainErr);
    }
}

/// <summary>The slice of a Knative Service these tests read, on KubernetesClient's typed pod objects.</summary>
public sealed class KnativeService
{
    public string ApiVersion { get; set; } = "";
    public string Kind { get; set; } = "";
    public V1ObjectMeta Metadata { get; set; } = new();
    public KnativeServiceSpec Spec { get; set; } = new();
}

public sealed class KnativeServiceSpec
{
    public RevisionTemplate Template { get; set; } = new();
    public List<TrafficTarget>? Traffic { get; set; }
}

public sealed class RevisionTemplate
{
    public V1ObjectMeta Metadata { get; set; } = new();
    public RevisionSpec Spec { get; set; } = new();
}

/// <summary>Knative's RevisionSpec: a PodSpec plus containerConcurrency.</summary>
public sealed record RevisionSpec : V1PodSpec
{
    public long? ContainerConcurrency { get; set; }
}

public sealed class TrafficTarget
{
    public bool? LatestRevision { get; set; }
    public string? RevisionName { get; set; }
    public long? Percent { get; set; }
    public string? Tag { get; set; }
}

/// <summary>
/// The fields a Knative Service may use here, by path ("*" = any map key, "[]" = list item): anything else is a field
/// Knative's webhook would reject or we did not mean to emit.
/// </summary>
internal static class KnativeSchema
{
    private static readonly HashSet<string> Allowed =
    [
        "apiVersion", "kind", "metadata", "metadata.name", "metadata.namespace", "metadata.labels", "metadata.labels.*",
        "spec", "spec.template", "spec.template.metadata", "spec.template.metadata.labels", "spec.template.metadata.labels.*",
        "spec.template.metadata.annotations", "spec.template.metadata.annotations.*",
        "spec.template.spec", "spec.template.spec.runtimeClassName", "spec.template.spec.containerConcurrency", "spec.template.spec.enableServiceLinks",
        "spec.template.spec.automountServiceAccountToken",
        "spec.template.spec.containers", "spec.template.spec.containers[]", "spec.template.spec.volumes", "spec.template.spec.volumes[]",
        "spec.template.spec.volumes[].name", "spec.template.spec.volumes[].emptyDir", "spec.template.spec.volumes[].emptyDir.medium",
        "spec.template.spec.volumes[].emptyDir.sizeLimit", "spec.template.spec.volumes[].hostPath", "spec.template.spec.volumes[].hostPath.path",
        "spec.template.spec.volumes[].hostPath.type",
        "spec.traffic", "spec.traffic[]", "spec.traffic[].latestRevision", "spec.traffic[].revisionName", "spec.traffic[].percent", "spec.traffic[].tag",
        .. new[] { "name", "image", "command", "command[]", "args", "args[]", "ports", "ports[]", "ports[].name", "ports[].containerPort", "env", "env[]",
            "env[].name", "env[].value", "env[].valueFrom", "env[].valueFrom.fieldRef", "env[].valueFrom.fieldRef.fieldPath", "resources", "resources.limits", "resources.limits.*", "volumeMounts", "volumeMounts[]", "volumeMounts[].name",
            "volumeMounts[].mountPath", "securityContext", "securityContext.runAsNonRoot", "securityContext.allowPrivilegeEscalation",
            "securityContext.readOnlyRootFilesystem", "securityContext.capabilities", "securityContext.capabilities.drop", "securityContext.capabilities.drop[]",
            "securityContext.seccompProfile", "securityContext.seccompProfile.type" }.Select(p => "spec.template.spec.containers[]." + p),
    ];

    private static readonly HashSet<string> Required = ["apiVersion", "kind", "metadata.name", "spec.template.spec.containers[].image"];

    public static void Check(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var seen = new HashSet<string>();
        Walk(stream.Documents.Single().RootNode, "", seen);
        Assert.Equal("serving.knative.dev/v1", ((YamlScalarNode)((YamlMappingNode)stream.Documents[0].RootNode)["apiVersion"]).Value);
        Assert.Equal("Service", ((YamlScalarNode)((YamlMappingNode)stream.Documents[0].RootNode)["kind"]).Value);
        foreach (var path in Required)
        {
            Assert.Contains(path, seen);
        }
    }

    private static void Walk(YamlNode node, string path, HashSet<string> seen)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (key, value) in map.Children)
                {
                    var name = ((YamlScalarNode)key).Value!;
                    var child = path.Length == 0 ? name : $"{path}.{name}";
                    var wildcard = $"{path}.*";
                    Assert.True(Allowed.Contains(child) || Allowed.Contains(wildcard), $"field {child} is not in the Knative schema");
                    if (Allowed.Contains(wildcard))
                    {
                        // Annotation, label and limit values must be strings: quoted scalars.
                        Assert.Equal(YamlDotNet.Core.ScalarStyle.DoubleQuoted, ((YamlScalarNode)value).Style);
                    }

                    seen.Add(child);
                    Walk(value, Allowed.Contains(child) ? child : wildcard, seen);
                }

                break;
            case YamlSequenceNode list:
                Assert.Contains(path + "[]", Allowed);
                foreach (var item in list)
                {
                    seen.Add(path + "[]");
                    Walk(item, path + "[]", seen);
                }

                break;
        }
    }
}

/// <summary>Just enough TOML for a Gramine manifest: top-level <c>key = value</c>, values spanning lines until brackets balance.</summary>
internal static class GramineToml
{
    public static Dictionary<string, string> TopLevelKeys(string toml)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        string? key = null;
        var value = new StringBuilder();
        var depth = 0;
        foreach (var line in toml.Split('\n'))
        {
            if (key is null)
            {
                if (line.StartsWith('#') || string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }

                var eq = line.IndexOf(" = ", StringComparison.Ordinal);
                Assert.True(eq > 0, $"not a key = value line: {line}");
                key = line[..eq].Trim();
                Assert.DoesNotContain(key, (IDictionary<string, string>)result);
                value.Clear().Append(line[(eq + 3)..]);
            }
            else
            {
                value.Append('\n').Append(line);
            }

            depth += line.Count(c => c is '[' or '{') - line.Count(c => c is ']' or '}');
            if (depth == 0)
            {
                result[key] = value.ToString().Trim();
                key = null;
            }
        }

        Assert.Null(key);
        return result;
    }
}
