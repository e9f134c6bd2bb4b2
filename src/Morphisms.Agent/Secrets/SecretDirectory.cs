namespace Morphisms.Agent.Secrets;

/// <summary>
/// The private directory for secret files (mode 0700; files 0400). Files are replaced atomically (write a temp file,
/// then rename over the old one), so the app never reads a half-written secret.
/// </summary>
public sealed class SecretDirectory(string path)
{
    private const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>The directory.</summary>
    public string Path { get; } = System.IO.Path.GetFullPath(path);

    /// <summary>Creates the directory (or tightens an existing one to 0700).</summary>
    public void Create()
    {
        Directory.CreateDirectory(Path, DirectoryMode);
        File.SetUnixFileMode(Path, DirectoryMode);
    }

    /// <summary>Writes the bundle's files and removes files it no longer has; returns true when anything changed.</summary>
    public bool Apply(IReadOnlyDictionary<string, byte[]> files)
    {
        var changed = false;
        foreach (var (name, content) in files)
        {
            var target = System.IO.Path.Combine(Path, name);
            if (File.Exists(target) && File.ReadAllBytes(target).AsSpan().SequenceEqual(content))
            {
                continue;
            }

            var temp = System.IO.Path.Combine(Path, $".{name}.{Guid.NewGuid():N}.tmp");
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite };
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            File.SetUnixFileMode(temp, UnixFileMode.UserRead);
            File.Move(temp, target, overwrite: true);
            changed = true;
        }

        foreach (var existing in Directory.EnumerateFiles(Path))
        {
            var name = System.IO.Path.GetFileName(existing);
            if (!files.ContainsKey(name))
            {
                File.Delete(existing);
                changed = true;
            }
        }

        return changed;
    }
}
