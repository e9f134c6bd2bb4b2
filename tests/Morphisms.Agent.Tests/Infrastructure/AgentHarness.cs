using System.Net;
using System.Net.Sockets;
using System.Text;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Agent.Tests;

/// <summary>
/// A function instance for end-to-end tests: a bundle directory and launch configuration (measured by the simulated
/// TEE), a private secrets directory, free ports, and the test app as the agent's child process.
/// </summary>
public sealed class AgentHarness : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("morph-agent-").FullName;

    /// <summary>Creates the bundle for <paramref name="function"/> and its launch configuration.</summary>
    public AgentHarness(string function)
    {
        Function = function;
        BundleDir = Path.Combine(_root, "bundle");
        Directory.CreateDirectory(BundleDir);
        File.WriteAllText(Path.Combine(BundleDir, "app.txt"), $"the {function} function");
        LaunchConfig = Encoding.UTF8.GetBytes($$"""{"function":"{{function}}"}""");
        SimDir = Path.Combine(_root, "sim");
        SecretsDir = Path.Combine(_root, "secrets");
        Marker = Path.Combine(_root, "app-started");
    }

    /// <summary>The function.</summary>
    public string Function { get; }

    /// <summary>The measured bundle.</summary>
    public string BundleDir { get; }

    /// <summary>The measured launch configuration.</summary>
    public byte[] LaunchConfig { get; }

    /// <summary>The simulated TEE's state directory (shared with the KMS).</summary>
    public string SimDir { get; }

    /// <summary>Where the agent writes secret files.</summary>
    public string SecretsDir { get; }

    /// <summary>The file the app creates when it starts: its absence proves the app never ran.</summary>
    public string Marker { get; }

    /// <summary>The simulated SNP measurement of the bundle and launch configuration.</summary>
    public byte[] Measurement => SimulatedMeasurement.ForSnp(BundleDir, LaunchConfig);

    /// <summary>Options for an agent against <paramref name="kms"/> with the command-line <paramref name="pin"/> (null: none).</summary>
    public AgentOptions Options(Uri kms, byte[]? pin, TextWriter log) => new()
    {
        Kms = kms,
        KmsCaSha256 = pin,
        Function = Function,
        Tee = "sim",
        Port = 0,
        ListenAddress = "127.0.0.1",
        AppPort = TestProcesses.FreePort(),
        SecretsDir = SecretsDir,
        App = [TestProcesses.DotnetHost, typeof(TestAppEntry).Assembly.Location, "app", "--marker", Marker],
        Simulated = new SimulatedTeeOptions { AuthorityDirectory = SimDir, BundleDirectory = BundleDir },
        SecretsPollInterval = TimeSpan.FromMilliseconds(200),
        KmsAttempts = 3,
        KmsRetryDelay = TimeSpan.FromMilliseconds(100),
        DrainTimeout = TimeSpan.FromSeconds(5),
        Log = log,
    };

    /// <inheritdoc />
    public void Dispose()
    {
        try
        {
            // Secret files are 0400 in a 0700 directory: make them deletable first.
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

/// <summary>A thread-safe in-memory log sink for the agent's JSON lines.</summary>
public sealed class LogSink : StringWriter
{
    private readonly Lock _gate = new();

    /// <inheritdoc />
    public override void WriteLine(string? value)
    {
        lock (_gate)
        {
            base.WriteLine(value);
        }
    }

    /// <summary>Everything written so far.</summary>
    public string Text
    {
        get
        {
            lock (_gate)
            {
                return ToString();
            }
        }
    }
}
