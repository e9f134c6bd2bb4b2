using System.Runtime.InteropServices;

namespace Morphisms.Agent.Tests.Evidence;

/// <summary>A temp directory standing in for a device interface (<c>/dev/attestation</c>, configfs-tsm).</summary>
public sealed partial class FakeDeviceTree : IDisposable
{
    /// <summary>The root.</summary>
    public string Root { get; } = Directory.CreateTempSubdirectory("morph-dev-").FullName;

    /// <summary>Writes a file under the root.</summary>
    public string Write(string relative, byte[] content)
    {
        var path = Path.Combine(Root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
        return path;
    }

    /// <summary>Writes a text file under the root.</summary>
    public string Write(string relative, string content) => Write(relative, System.Text.Encoding.ASCII.GetBytes(content));

    /// <summary>Makes a named pipe (to interleave a "concurrent writer" with the provider's reads).</summary>
    public string Fifo(string relative)
    {
        var path = Path.Combine(Root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        Assert.Equal(0, MkFifo(path, Convert.ToUInt32("600", 8)));
        return path;
    }

    [LibraryImport("libc", EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int MkFifo(string path, uint mode);

    /// <inheritdoc />
    public void Dispose() => Directory.Delete(Root, recursive: true);
}
