using System.Reflection;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Identity;
using Morphisms.Attestation.Simulated;
using Morphisms.Serving.Gateway;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests.Hosting;

/// <summary>
/// Real confidential serving: a real KMS, real <c>morph-init</c> processes attesting with the simulated TEE, the test
/// app as the function, and clients speaking TLS through the SNI passthrough gateway.
/// </summary>
public sealed class ConfidentialServingTests(ServingKms kms) : IClassFixture<ServingKms>
{
    private const string Domain = "fn.morphisms.local";

    [Fact]
    public async Task ScaleFromZero_ServesOverTlsEndingInTheInstance_ThenScalesBackToZero()
    {
        using var functions = new TestFunctions();
        await kms.PutBundleAsync("coldfn");
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir);
        var spec = functions.Spec("coldfn", "a", scale: new ScaleSpec
        {
            Min = 0,
            Initial = 0,
            StableWindow = TimeSpan.FromSeconds(6),
            ScaleToZeroGracePeriod = TimeSpan.Zero,
        });
        var deployed = await host.DeployAsync(spec, CancellationToken.None);
        Assert.Empty(host.Instances.Ready(deployed.Revision));

        // The deploy measured the bundle and left the simulated TEE its file digests, which the instance's launch
        // measurement reads instead of the files (the attested measurement below must still be the deploy's).
        Assert.NotEqual(0, SimulatedMeasurementCache.Open(kms.SimDir, spec.Bundle).Count);

        // The gateway is untrusted: it has no certificate, no key and no TLS stream anywhere in its state.
        AssertHoldsNoTlsMaterial(host.SniGateway!);

        var root = await kms.RootCaAsync();
        var seen = new List<X509Certificate2>();
        using var client = TestFunctions.SniClient(host.GatewayEndPoint, (cert, chain) =>
        {
            lock (seen)
            {
                seen.Add(X509CertificateLoader.LoadCertificate(cert.RawData));
            }

            return ChainsTo(cert, chain, root);
        });
        var body = await client.GetStringAsync($"https://coldfn.{Domain}/");
        Assert.StartsWith("rev=a;", body);

        var leaf = seen.Single();
        Assert.Contains($"coldfn.{Domain}", SubjectAlternativeNames(leaf));
        var identity = AttestedIdentityExtension.FromCertificate(leaf);
        Assert.NotNull(identity);
        Assert.Equal("coldfn", identity.Function);
        Assert.True(identity.Simulated);
        Assert.Equal(deployed.Measurement, Convert.ToHexStringLower(identity.Measurement));
        Assert.Equal($"{identity.Tee}:{deployed.Measurement}", deployed.ExpectMeasurement); // what --expect-measurement takes
        Assert.Contains("phase=\"attestation\"", host.Metrics.Render());

        // The splice relay hands its first-byte time to the thread pool rather than run the observer on its loop, so
        // the metric can land just after the client has the response.
        await Eventually.True(() => host.Metrics.Render().Contains("phase=\"first_byte\"", StringComparison.Ordinal), "first_byte recorded", seconds: 5);

        // Idle: the stable window (6 s) plus no grace, decided every 2 s.
        var process = Assert.Single(host.Supervisor(deployed.Revision)!.Snapshot()).Process;
        await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 0 && process.Exited.IsCompleted, "scaled back to zero", seconds: 25);
        Assert.Equal(0, await process.Exited);

        // The agent POSTed its report with its own report token, long before it was stopped, and it was taken: a refused
        // or failed POST would be a cold_start_report warning in its output.
        Assert.DoesNotContain(process.Logs.Snapshot(), l => l.Text.Contains("cold_start_report", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TrafficSplit_BetweenTwoRevisions_HoldsOverRealRequests()
    {
        using var functions = new TestFunctions();
        await kms.PutBundleAsync("split");
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir);
        var warm = new ScaleSpec { Min = 1 };
        var first = await host.DeployAsync(functions.Spec("split", "a", scale: warm), CancellationToken.None);
        var second = await host.DeployAsync(functions.Spec("split", "b", scale: warm) with
        {
            Traffic = [new TrafficSpec(first.Revision, 30, null), new TrafficSpec("latest", 70, "canary")],
        }, CancellationToken.None);
        Assert.NotEqual(first.Measurement, second.Measurement);
        await Eventually.True(() => host.Instances.Ready(first.Revision).Count == 1 && host.Instances.Ready(second.Revision).Count == 1, "both revisions ready", seconds: 40);

        using var client = TestFunctions.SniClient(host.GatewayEndPoint, (_, _) => true);
        const int requests = 100;
        var b = 0;
        for (var i = 0; i < requests; i++)
        {
            if ((await client.GetStringAsync($"https://split.{Domain}/")).StartsWith("rev=b;", StringComparison.Ordinal))
            {
                b++;
            }
        }

        // 70 % expected; ±15 is more than four standard deviations (sqrt(100 × 0.7 × 0.3) ≈ 4.6).
        Assert.InRange(b, 55, 85);
        Assert.StartsWith("rev=b;", await client.GetStringAsync($"https://canary-split.{Domain}/"));
    }

    [Fact]
    public async Task CrashedApp_IsRestartedWithBackoff_AndRequestsSucceedAgain()
    {
        using var functions = new TestFunctions();
        await kms.PutBundleAsync("phoenix");
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir);
        var deployed = await host.DeployAsync(functions.Spec("phoenix", "a", scale: new ScaleSpec { Min = 1 }), CancellationToken.None);
        using var client = TestFunctions.SniClient(host.GatewayEndPoint, (_, _) => true);
        var before = await client.GetStringAsync($"https://phoenix.{Domain}/");

        // The app answers and exits with code 3; morph-init exits with the app's code and the runtime replaces it.
        await client.GetStringAsync($"https://phoenix.{Domain}/crash");
        await Eventually.True(() => host.Supervisor(deployed.Revision)!.TotalCrashes == 1, "crash noticed");
        var after = await client.GetStringAsync($"https://phoenix.{Domain}/");
        Assert.StartsWith("rev=a;", after);
        Assert.NotEqual(before, after); // another boot value: a new instance
        Assert.Contains(host.Logs("phoenix", 500), l => l.Line.Text.Contains("exited unexpectedly (code 3)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ASymlinkedBundle_IsMeasuredBoundAndRunAsTheDirectoryItLeadsTo()
    {
        using var functions = new TestFunctions();
        await kms.PutBundleAsync("linked");
        await using var host = await functions.HostAsync(GatewayMode.Confidential, kms.Connection, kms.SimDir);
        // function.yaml says bundle: ./publish, and publish is a symlink to the build output, as a build script may leave
        // it. The sandbox binds real paths only, and morph-init measures its --bundle inside it.
        var output = functions.Spec("linked", "a").Bundle;
        var dir = Directory.CreateTempSubdirectory("morph-linked-").FullName;
        try
        {
            Directory.CreateSymbolicLink(Path.Combine(dir, "publish"), output);
            await File.WriteAllTextAsync(Path.Combine(dir, FunctionSpecLoader.FileName), $$"""
                name: linked
                tee: sim
                bundle: ./publish
                command: {{System.Text.Json.JsonSerializer.Serialize(TestFunctions.AppCommand)}}
                env: { REV: a }
                scale: { min: 1 }
                """);

            var deployed = await host.DeployAsync(FunctionSpecLoader.Load(dir), CancellationToken.None);
            var supervisor = host.Supervisor(deployed.Revision)!;
            await Eventually.True(() => host.Instances.Ready(deployed.Revision).Count == 1 || supervisor.TotalCrashes > 0, "an instance ready or crashed", seconds: 40);
            Assert.True(supervisor.TotalCrashes == 0, string.Join('\n', host.Logs("linked", 50).Select(l => l.Line.Text)));

            using var client = TestFunctions.SniClient(host.GatewayEndPoint, (_, _) => true);
            Assert.StartsWith("rev=a;", await client.GetStringAsync($"https://linked.{Domain}/"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void AssertHoldsNoTlsMaterial(SniPassthroughGateway gateway)
    {
        static bool IsTlsMaterial(Type t) =>
            typeof(X509Certificate).IsAssignableFrom(t) || typeof(AsymmetricAlgorithm).IsAssignableFrom(t)
            || typeof(System.Net.Security.SslStream).IsAssignableFrom(t) || t == typeof(System.Net.Security.SslServerAuthenticationOptions);

        var fields = typeof(SniPassthroughGateway).GetFields(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
        Assert.DoesNotContain(fields, f => IsTlsMaterial(f.FieldType));
        Assert.DoesNotContain(typeof(SniGatewayOptions).GetProperties(), p => IsTlsMaterial(p.PropertyType));
        Assert.NotNull(gateway);
    }

    private static bool ChainsTo(X509Certificate2 leaf, X509Chain? presented, X509Certificate2 root)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(root);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (presented is not null)
        {
            foreach (var element in presented.ChainElements)
            {
                chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        return chain.Build(leaf);
    }

    private static IReadOnlyList<string> SubjectAlternativeNames(X509Certificate2 certificate) =>
        certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateDnsNames()).ToList();
}
