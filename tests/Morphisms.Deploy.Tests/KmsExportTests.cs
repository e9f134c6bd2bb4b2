using System.Diagnostics;
using k8s;
using k8s.Models;
using Morphisms.Deploy.Kms;

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
        var files = KmsExporter.Export(new KmsExportRequest { Image = Image, Replicas = 3, Namespace = "morph" });
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

    [Fact]
    public void RejectsBadRequests()
    {
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = Image, Replicas = 0 }));
        Assert.Throws<ArgumentException>(() => KmsExporter.Export(new KmsExportRequest { Image = "morph:latest" }));
    }

    [KubectlFact]
    public async Task KustomizationBuildsOfflineWithKubectl()
    {
        var (code, _, stderr) = await SigStructTests.Run("export", "kms", "--image", Image, "--replicas", "2", "--namespace", "morph", "-o", _dir);
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
