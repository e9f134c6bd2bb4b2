using System.Diagnostics;
using System.Security.Cryptography;
using k8s;
using k8s.Models;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Client.Trust;
using Morphisms.Deploy.Kms;
using Morphisms.Deploy.Knative;

namespace Morphisms.Deploy.Tests;

public sealed class KmsExportTests : IDisposable
{
    private const string Image = "registry.example/morph@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    internal const string Kubectl = "/usr/bin/kubectl";
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-kms-export-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void PlainYamlParsesIntoADeploymentAndService()
    {
        var files = KmsExporter.Export(new KmsExportRequest { Image = Image, Replicas = 3, Namespace = "morph", Tee = ExportTee.Snp }).Files;
        var objects = KubernetesYaml.LoadAllFromString(files.Single(f => f.Path == "kms.yaml").Content);
        var deployment = Assert.IsType<V1Deployment>(objects[0]);
        var service = Assert.IsType<V1Service>(objects[1]);

        Assert.Equal(3, deployment.Spec.Replicas);
        Assert.Equal("morph", deployment.Metadata.NamespaceProperty);
        var container = Assert.Single(deployment.Spec.Template.Spec.Containers);
        Assert.Equal("/v1/sys/health", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("HTTPS", container.ReadinessProbe.HttpGet.Scheme);
        Assert.StartsWith("/v1/sys/health?", container.LivenessProbe.HttpGet.Path);
        // The connection string arrives where `--storage postgres` reads it, from a Secret, never as a literal.
        var database = container.Env.Single(e => e.Name == Morphisms.Kms.Storage.PostgresStorage.ConnectionStringVariable);
        Assert.Equal("morph-kms-postgres", database.ValueFrom.SecretKeyRef.Name);
        Assert.Null(database.Value);
        Assert.Equal(["--storage", "postgres"], container.Args.SkipWhile(a => a != "--storage").Take(2));
        Assert.DoesNotContain(container.Args, a => a.Contains("Password", StringComparison.OrdinalIgnoreCase));

        // Each replica advertises its own address, which standbys redirect to.
        Assert.Equal("status.podIP", container.Env.Single(e => e.Name == KmsExporter.PodIpVariable).ValueFrom.FieldRef.FieldPath);
        Assert.Equal(["--api-addr", "https://$(POD_IP):8200"], container.Args.SkipWhile(a => a != "--api-addr").Take(2));
        Assert.Equal(deployment.Spec.Selector.MatchLabels, service.Spec.Selector);
        Assert.Equal(8200, Assert.Single(service.Spec.Ports).Port);
    }

    [Theory]
    [InlineData(ExportTee.Snp, null, "kata-qemu-snp", 32)]
    [InlineData(ExportTee.Tdx, null, "kata-qemu-tdx", 48)]
    [InlineData(ExportTee.Snp, "kata-snp-custom", "kata-snp-custom", 32)]
    public void InATeeTheKmsRunsUnderKataWithAMeasuredPolicyAndMakesItsOwnTlsKey(ExportTee tee, string? runtimeClass, string expectedClass, int digestLength)
    {
        var result = KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = tee, RuntimeClass = runtimeClass });
        var yaml = result.Files.Single(f => f.Path == "kms.yaml").Content;
        var deployment = Assert.IsType<V1Deployment>(KubernetesYaml.LoadAllFromString(yaml)[0]);
        var pod = deployment.Spec.Template.Spec;
        Assert.Equal(expectedClass, pod.RuntimeClassName);

        // No key from the cluster: no Secret volume, only memory-backed ones; the KMS makes its key in the TEE.
        Assert.All(pod.Volumes, v => Assert.Equal("Memory", v.EmptyDir.Medium));
        Assert.DoesNotContain("morph-kms-tls", yaml, StringComparison.Ordinal);
        var container = Assert.Single(pod.Containers);
        Assert.Contains("--tls-self", container.Args);
        Assert.DoesNotContain(container.Args, a => a.StartsWith("--tls-cert", StringComparison.Ordinal) || a.StartsWith("--tls-key", StringComparison.Ordinal));
        Assert.False(pod.AutomountServiceAccountToken);

        // Initdata with the agent policy pinning this image and argv; its digest is the launch field printed.
        var document = Initdata.Decode(deployment.Spec.Template.Metadata.Annotations[Initdata.Annotation]);
        Assert.Equal(result.Files.Single(f => f.Path == "initdata.toml").Content, document);
        Assert.Contains($"\"{Initdata.PolicyEntry}\" = '''", document, StringComparison.Ordinal);
        Assert.Contains($"\"image\": \"{Image}\"", document, StringComparison.Ordinal);
        Assert.Equal([KmsExportRequest.DefaultCommand], container.Command);
        var pinned = PolicyData.Containers(document).GetProperty(KmsExporter.ContainerName);
        Assert.Equal(Image, pinned.GetProperty("image").GetString());
        Assert.Equal([.. container.Command, .. container.Args], pinned.GetProperty("args").EnumerateArray().Select(a => a.GetString()!));
        Assert.Contains("default ExecProcessRequest := false", document, StringComparison.Ordinal);
        var digest = Initdata.Digest(document, tee);
        Assert.Equal(digestLength, digest.Length);
        Assert.Contains(Convert.ToHexStringLower(digest), result.Measured[0], StringComparison.Ordinal);
        Assert.Contains(Convert.ToHexStringLower(digest), yaml, StringComparison.Ordinal);
        Assert.Contains("GAP", result.Measured[2], StringComparison.Ordinal);

        // The pin printed (and in the YAML header) carries that digest beside the guest image's launch values, named.
        var (guest, key) = tee == ExportTee.Tdx ? ("MRTD/RTMR0/RTMR1/RTMR2/RTMR3", "mrconfigid") : ("MEASUREMENT", "host_data");
        var pin = $"{tee.ToString().ToLowerInvariant()}:{guest},{key}={Convert.ToHexStringLower(digest)}";
        Assert.StartsWith($"KMS pin (morph kms trust URL --expect-measurement PIN): {pin} — ", result.Measured[1], StringComparison.Ordinal);
        Assert.Contains($"# morph kms trust URL --expect-measurement {pin}\n", yaml, StringComparison.Ordinal);
    }

    /// <summary>
    /// With the Kata guest's launch values the printed pin is complete: it reads as a client KMS pin that a pod of that
    /// guest image matches only with the initdata exported here (the impostor's pod on the same image, other initdata, does not).
    /// </summary>
    [Fact]
    public void WithTheGuestLaunchValuesThePrintedSnpPinBindsTheExportedInitdata()
    {
        var guestImage = SHA384.HashData("the Kata guest image"u8);
        var result = KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, GuestLaunchValues = [guestImage] });
        var digest = Initdata.Digest(result.Files.Single(f => f.Path == "initdata.toml").Content, ExportTee.Snp);

        var printed = result.Measured[1][(result.Measured[1].IndexOf("): ", StringComparison.Ordinal) + 3)..];
        var pin = KmsMeasurementPin.Parse(printed);
        Assert.Equal(KmsMeasurementPin.Snp(guestImage, digest), pin);
        Assert.Contains($"# morph kms trust URL --expect-measurement {pin}\n", result.Files.Single(f => f.Path == "kms.yaml").Content, StringComparison.Ordinal);

        using var tee = SimulatedTeeAuthority.Create(TimeProvider.System);
        EvidenceClaims Pod(byte[] hostData) => EvidenceVerifier.Parse(TeeType.Snp,
            tee.CreateSnpReport(new SimulatedSnpReportRequest { ReportData = new byte[64], Measurement = guestImage, HostData = hostData }));
        Assert.True(pin.Matches(Pod(digest)));
        Assert.Equal("HOST_DATA differs", pin.Mismatch(Pod(SHA256.HashData("an impostor's initdata"u8))));
    }

    [Fact]
    public void WithTheGuestLaunchValuesThePrintedTdxPinCarriesTheMrConfigId()
    {
        var registers = Enumerable.Range(0, 5).Select(i => SHA384.HashData([(byte)i])).ToArray();
        var result = KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Tdx, GuestLaunchValues = registers });
        var digest = Initdata.Digest(result.Files.Single(f => f.Path == "initdata.toml").Content, ExportTee.Tdx);

        var pin = KmsMeasurementPin.Parse(result.Measured[1][(result.Measured[1].IndexOf("): ", StringComparison.Ordinal) + 3)..]);
        Assert.Equal(TeeType.Tdx, pin.Tee);
        Assert.Equal(registers, pin.Components.Select(c => c.ToArray()));
        Assert.Equal(digest, pin.Workload!.Value.ToArray());
    }

    [Fact]
    public void GuestLaunchValuesOfTheWrongShapeAreRefused()
    {
        var value = new byte[48];
        Assert.Contains("MEASUREMENT: 1 of 48 bytes", Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, GuestLaunchValues = [value, value] })).Message, StringComparison.Ordinal);
        Assert.Contains("MRTD/RTMR0/RTMR1/RTMR2/RTMR3: 5 of 48 bytes", Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Tdx, GuestLaunchValues = [value] })).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, GuestLaunchValues = [new byte[32]] }));
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, InsecureNoTee = true, GuestLaunchValues = [value] }));
        Assert.Throws<ArgumentException>(() => KmsExporter.Pin(ExportTee.Snp, new byte[48], null));
        Assert.Throws<ArgumentException>(() => KmsExporter.Pin(ExportTee.Sgx, new byte[32], null));
    }

    [Fact]
    public async Task CliPrintsTheCompletePinWithGuestMeasurementAndRefusesAMismatchedOne()
    {
        var measurement = new string('a', 96);
        var (code, stdout, stderr) = await SigStructTests.Run("export", "kms", "--image", Image, "--tee", "snp", "--guest-measurement", $"snp:{measurement}", "-o", _dir);
        Assert.True(code == 0, stderr);
        var digest = Convert.ToHexStringLower(Initdata.Digest(await File.ReadAllTextAsync(Path.Combine(_dir, "initdata.toml")), ExportTee.Snp));
        // The whole pin, with no placeholder note after it.
        Assert.Contains($"--expect-measurement PIN): snp:{measurement},host_data={digest}\n", stdout.ReplaceLineEndings("\n"), StringComparison.Ordinal);

        foreach (var (args, reason) in new[]
        {
            (new[] { "--tee", "tdx", "--guest-measurement", $"snp:{measurement}" }, "--tee tdx takes the guest's launch values as tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3, not snp:"),
            (new[] { "--tee", "snp", "--guest-measurement", measurement }, "with the TEE named"),
            (new[] { "--tee", "snp", "--guest-measurement", $"snp:{measurement},host_data={digest}" }, "the export adds the host_data / mrconfigid"),
            (new[] { "--tee", "snp", "--guest-measurement", "snp:00" }, "--guest-measurement: snp: MEASUREMENT must be 96 hex digits"),
            (new[] { "--insecure-no-tee", "--guest-measurement", $"snp:{measurement}" }, "--guest-measurement is for a KMS in a TEE"),
        })
        {
            var dir = Directory.CreateTempSubdirectory("morph-kms-export-refused-").FullName;
            try
            {
                var (refused, _, refusedErr) = await SigStructTests.Run(["export", "kms", "--image", Image, .. args, "-o", dir]);
                Assert.Equal(2, refused);
                Assert.Contains(reason, refusedErr, StringComparison.Ordinal);
                Assert.Empty(Directory.GetFiles(dir));
            }
            finally
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void InsecureNoTeeKeepsTheSecretAndSaysSo()
    {
        var result = KmsExporter.Export(new KmsExportRequest { Image = Image, InsecureNoTee = true });
        var yaml = result.Files.Single(f => f.Path == "kms.yaml").Content;
        Assert.StartsWith("# Generated", yaml, StringComparison.Ordinal);
        Assert.Contains("# INSECURE (--insecure-no-tee)", yaml, StringComparison.Ordinal);
        var deployment = Assert.IsType<V1Deployment>(KubernetesYaml.LoadAllFromString(yaml)[0]);
        var pod = deployment.Spec.Template.Spec;
        Assert.Null(pod.RuntimeClassName);
        Assert.Equal("morph-kms-tls", Assert.Single(pod.Volumes, v => v.Secret is not null).Secret.SecretName);
        Assert.Equal(["--tls-cert", "/etc/morph/tls/tls.crt", "--tls-key", "/etc/morph/tls/tls.key"], Assert.Single(pod.Containers).Args.TakeLast(4));
        Assert.DoesNotContain(result.Files, f => f.Path == "initdata.toml");
        Assert.StartsWith("INSECURE", Assert.Single(result.Measured), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheKmsRunsAsANonRootUserWithNoPrivilegesAndAReadOnlyRoot(bool insecure)
    {
        var result = KmsExporter.Export(insecure ? new KmsExportRequest { Image = Image, InsecureNoTee = true } : new KmsExportRequest { Image = Image, Tee = ExportTee.Snp });
        var deployment = Assert.IsType<V1Deployment>(KubernetesYaml.LoadAllFromString(result.Files.Single(f => f.Path == "kms.yaml").Content)[0]);
        var pod = deployment.Spec.Template.Spec;

        // No Kubernetes API token in any mode: the KMS never calls the API.
        Assert.False(pod.AutomountServiceAccountToken);

        // A fixed non-root uid and gid (.NET images' `app`), whatever USER the image names; its volumes are group-writable to it.
        Assert.True(pod.SecurityContext.RunAsNonRoot);
        Assert.Equal(1654, pod.SecurityContext.RunAsUser);
        Assert.Equal(1654, pod.SecurityContext.RunAsGroup);
        Assert.Equal(1654, pod.SecurityContext.FsGroup);
        var container = Assert.Single(pod.Containers);
        var security = container.SecurityContext;
        Assert.False(security.AllowPrivilegeEscalation);
        Assert.Null(security.Privileged);
        Assert.Equal(["ALL"], security.Capabilities.Drop);
        Assert.Null(security.Capabilities.Add);
        Assert.Equal("RuntimeDefault", security.SeccompProfile.Type);
        Assert.True(security.ReadOnlyRootFilesystem);

        // The root is read-only, so what the KMS writes, MORPHISMS_HOME (the simulated TEE it makes at its first start)
        // and temporary files, is in memory-backed emptyDirs; no diagnostics socket.
        var home = container.Env.Single(e => e.Name == "MORPHISMS_HOME").Value;
        Assert.StartsWith("/", home, StringComparison.Ordinal);
        Assert.Equal("0", container.Env.Single(e => e.Name == "DOTNET_EnableDiagnostics").Value);
        var writable = container.VolumeMounts.Where(m => m.ReadOnlyProperty != true).ToList();
        Assert.Equal(new[] { home, "/tmp" }.Order(StringComparer.Ordinal), writable.Select(m => m.MountPath).Order(StringComparer.Ordinal));
        Assert.All(writable, m => Assert.Equal("Memory", pod.Volumes.Single(v => v.Name == m.Name).EmptyDir.Medium));
        if (insecure)
        {
            Assert.Equal("/etc/morph/tls", Assert.Single(container.VolumeMounts, m => m.ReadOnlyProperty == true).MountPath);
            return;
        }

        // In a TEE the agent policy admits exactly those volumes as memory-backed, and pins the two variables' values.
        var pinned = PolicyData.Containers(result.Files.Single(f => f.Path == "initdata.toml").Content).GetProperty(KmsExporter.ContainerName);
        Assert.Equal(
            writable.Select(m => (m.MountPath, m.Name)).Order(),
            pinned.GetProperty("memory_volumes").EnumerateArray().Select(v => (v.GetProperty("destination").GetString()!, v.GetProperty("volume").GetString()!)).Order());
        Assert.Equal(home, pinned.GetProperty("env").GetProperty("MORPHISMS_HOME").GetString());
        Assert.Equal("0", pinned.GetProperty("env").GetProperty("DOTNET_EnableDiagnostics").GetString());
    }

    [Fact]
    public void RejectsBadRequests()
    {
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, Replicas = 0 }));
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = "morph:latest", Tee = ExportTee.Snp }));
        Assert.Contains("--insecure-no-tee", Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image })).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, InsecureNoTee = true }));
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Sgx }));
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, RuntimeClass = "Kata QEMU" }));
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, Command = "morph" }));
        Assert.Contains("--namespace must be a DNS label", Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, Namespace = "Bad NS" })).Message, StringComparison.Ordinal);
        Assert.Contains("--db-secret must be a DNS subdomain", Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Tee = ExportTee.Snp, DatabaseSecret = "pg secret" })).Message, StringComparison.Ordinal);
        Assert.Contains("--tls-secret must be a DNS subdomain", Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, InsecureNoTee = true, TlsSecret = "TLS" })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CliNeedsATeeOrALoudInsecureFlag()
    {
        var (missing, _, missingErr) = await SigStructTests.Run("export", "kms", "--image", Image, "-o", _dir);
        Assert.Equal(2, missing);
        Assert.Contains("--tee snp|tdx", missingErr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_dir));

        var (tlsSecret, _, tlsSecretErr) = await SigStructTests.Run("export", "kms", "--image", Image, "--tee", "snp", "--tls-secret", "s", "-o", _dir);
        Assert.Equal(2, tlsSecret);
        Assert.Contains("--insecure-no-tee", tlsSecretErr, StringComparison.Ordinal);

        var (tee, teeOut, teeErr) = await SigStructTests.Run("export", "kms", "--image", Image, "--tee", "tdx", "-o", _dir);
        Assert.True(tee == 0, teeErr);
        Assert.Equal("", teeErr);
        Assert.Contains("MRCONFIGID", teeOut, StringComparison.Ordinal);
        Assert.Contains("kata-qemu-tdx", await File.ReadAllTextAsync(Path.Combine(_dir, "deployment.yaml")));

        var (insecure, _, insecureErr) = await SigStructTests.Run("export", "kms", "--image", Image, "--insecure-no-tee", "-o", _dir);
        Assert.True(insecure == 0, insecureErr);
        Assert.Contains("WARNING: --insecure-no-tee", insecureErr, StringComparison.Ordinal);
        Assert.Contains("# INSECURE", await File.ReadAllTextAsync(Path.Combine(_dir, "kms.yaml")));
    }

    [KubectlFact]
    public async Task KustomizationBuildsOfflineWithKubectl()
    {
        var (code, _, stderr) = await SigStructTests.Run("export", "kms", "--image", Image, "--tee", "snp", "--replicas", "2", "--namespace", "morph", "-o", _dir);
        Assert.True(code == 0, stderr);
        var start = new ProcessStartInfo(Kubectl) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("kustomize");
        start.ArgumentList.Add(_dir);
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, error);

        var objects = KubernetesYaml.LoadAllFromString(output);
        Assert.Contains(objects, o => o is V1Deployment { Spec.Replicas: 2, Metadata.NamespaceProperty: "morph" });
        Assert.Contains(objects, o => o is V1Service { Metadata.NamespaceProperty: "morph" });
    }
}

/// <summary>A fact that is skipped, saying why, when kubectl (for the offline <c>kubectl kustomize</c>) is absent.</summary>
public sealed class KubectlFactAttribute : FactAttribute
{
    public KubectlFactAttribute()
    {
        if (!File.Exists(KmsExportTests.Kubectl))
        {
            Skip = $"{KmsExportTests.Kubectl} is not installed: the kustomization is not built (install kubectl to run this test)";
        }
    }
}
