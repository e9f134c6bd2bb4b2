using System.Security.Cryptography;

namespace Morphisms.Serving.Tests;

/// <summary>
/// A test class's own directory for the host paths an instance launch uses (data directory, bundle, simulated TEE,
/// planted files), made per test and removed after it. Under /var/tmp, not /tmp: a sandboxed instance gets a private
/// /tmp, which would hide them whatever the sandbox's view.
/// </summary>
public abstract class HostScratch : IDisposable
{
    /// <param name="prefix">The directory name's start, naming the test class in a leftover directory.</param>
    protected HostScratch(string prefix) =>
        Root = Directory.CreateDirectory(Path.Combine("/var/tmp", prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)))).FullName;

    /// <summary>The directory.</summary>
    protected string Root { get; }

    /// <summary>The serving data directory inside it (not created).</summary>
    protected string Data => Path.Combine(Root, "data");

    /// <summary>Removes the directory; one an instance left unremovable stays behind rather than fail the test.</summary>
    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }

        GC.SuppressFinalize(this);
    }
}
