using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Serving.Hosting;
using Morphisms.Serving.Runtime;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Tests;

/// <summary>Bundles, specs, serving hosts and clients for the end-to-end tests.</summary>
internal sealed class TestFunctions : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("morph-serving-").FullName;

    public string DataDir => Path.Combine(_root, "data");

    public StringWriter Log { get; } = new();

    /// <summary>Where <see cref="HostAsync"/>'s host writes its control token (what <c>--control-token-file</c> names).</summary>
    // Its own directory: the host protects that directory from every sandbox, and the bundles are beside it.
    public string ControlTokenFile => Path.Combine(_root, "control", "control-token");

    /// <summary>Where <see cref="HostAsync"/>'s host writes its metrics token, beside the control token.</summary>
    public string MetricsTokenFile => Path.Combine(_root, "control", "metrics-token");

    /// <summary>The test app (this assembly) as a function command.</summary>
    public static IReadOnlyList<string> AppCommand =>
        [TestProcesses.DotnetHost, typeof(ServingTestApp).Assembly.Location, "app"];

    /// <summary>A stand-in for morph-init (<see cref="ServingTestApp"/>'s <c>agent</c> mode) that reports only through the control API.</summary>
    public static IReadOnlyList<string> FakeAgent =>
        [TestProcesses.DotnetHost, typeof(ServingTestApp).Assembly.Location, "agent"];

    /// <summary>morph-init, copied beside the tests by the project reference.</summary>
    public static IReadOnlyList<string> MorphInit =>
        [TestProcesses.DotnetHost, Path.Combine(AppContext.BaseDirectory, "morph-init.dll")];

    /// <summary>A spec for the test app with its own bundle directory.</summary>
    public FunctionSpec Spec(string name, string rev, FunctionTee tee = FunctionTee.Sim, ScaleSpec? scale = null)
    {
        var bundle = Directory.CreateDirectory(Path.Combine(_root, "bundles", name)).FullName;
        File.WriteAllText(Path.Combine(bundle, "app.txt"), $"the {name} function");
        return new FunctionSpec
        {
            Name = name,
            Tee = tee,
            Bundle = bundle,
            Command = AppCommand,
            Env = new Dictionary<string, string> { ["REV"] = rev },
            Scale = scale ?? new ScaleSpec(),
        };
    }

    /// <summary>A started host.</summary>
    public async Task<ServingHost> HostAsync(GatewayMode mode, KmsConnection? kms = null, string? simDir = null, IInstanceLauncher? launcher = null,
        Morphisms.Serving.Activation.ActivatorOptions? activator = null, TimeProvider? time = null, X509Certificate2? httpsCertificate = null, IReadOnlyList<string>? morphInit = null)
    {
        var host = new ServingHost(new ServingHostOptions
        {
            Mode = mode,
            HttpGatewayCertificate = httpsCertificate,
            DataDirectory = DataDir,
            Kms = kms,
            SimulatedTeeDirectory = simDir,
            Launcher = launcher,
            Runtime = new RuntimeOptions { DataDirectory = DataDir, MorphInit = morphInit ?? MorphInit },
            Supervisor = new SupervisorOptions { DrainTimeout = TimeSpan.FromSeconds(2), RestartBackoff = TimeSpan.FromMilliseconds(200) },
            Activator = activator ?? new Morphisms.Serving.Activation.ActivatorOptions { QueueTimeout = TimeSpan.FromSeconds(40) },
            Time = time ?? TimeProvider.System,
            Log = TextWriter.Synchronized(Log),
            ControlTokenFile = ControlTokenFile,
            MetricsTokenFile = MetricsTokenFile,
        });
        await host.StartAsync(CancellationToken.None);
        return host;
    }

    /// <summary>A client for <paramref name="host"/>'s control API that sends its control token.</summary>
    public static HttpClient ControlClient(ServingHost host)
    {
        var http = new HttpClient { BaseAddress = host.ControlUrl };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", host.ControlToken.Value);
        return http;
    }

    /// <summary>
    /// A client that connects every request to the gateway and sends the function's host name as SNI, checking the
    /// certificate with <paramref name="verify"/>. One connection per request, so each is routed anew.
    /// </summary>
    public static HttpClient SniClient(IPEndPoint gateway, Func<X509Certificate2, X509Chain?, bool> verify)
    {
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.Zero,
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(gateway, ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, cert, chain, _) => cert is X509Certificate2 c && verify(c, chain),
            },
        };
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
    }

    public void Dispose()
    {
        try
        {
            foreach (var file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories))
            {
                File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
