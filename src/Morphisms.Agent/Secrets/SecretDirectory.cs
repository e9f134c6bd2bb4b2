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

    /// <summary>
    /// Writes the bundle's files and removes files it no longer has; returns true when anything changed. Every new
    /// content is written to a temporary file first: if one cannot be written (a full tmpfs), the temporaries go and
    /// no secret has changed.
    /// </summary>
    /// <exception cref="IOException">A file could not be written; nothing was replaced.</exception>
    public bool Apply(IReadOnlyDictionary<string, byte[]> files)
    {
        var staged = new List<(string Temp, string Target)>();
        try
        {
            foreach (var (name, content) in files)
            {
                var target = System.IO.Path.Combine(Path, name);
                if (Directory.Exists(target))
                {
                    // The app shares the directory's owner; a directory it made under a secret's name cannot be replaced.
                    throw new IOException($"secret file '{name}': a directory is in the way");
                }

                if (!Unchanged(target, content))
                {
                    staged.Add((Stage(content), target));
                }
            }
        }
        catch
        {
            foreach (var (temp, _) in staged)
            {
                File.Delete(temp);
            }

            throw;
        }

        foreach (var (temp, target) in staged)
        {
            File.Move(temp, target, overwrite: true);
        }

        var changed = staged.Count > 0;
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

    /// <summary>Deletes the secret files and the directory (the app has stopped: nothing may read them any more).</summary>
    public void Wipe()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }

    // Only a regular file of the right length is read back: the app shares this directory's owner, and a link it
    // planted under a secret's name (to /dev/zero, say) must not make the agent read without end.
    private static bool Unchanged(string target, byte[] content)
    {
        var existing = new FileInfo(target);
        return existing.Exists && existing.LinkTarget is null && existing.Length == content.Length
            && File.ReadAllBytes(target).AsSpan().SequenceEqual(content);
    }

    private string Stage(byte[] content)
    {
        // Not named after the secret: the name may already be as long as the file system allows (255 bytes).
        var temp = System.IO.Path.Combine(Path, $".{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite };
        try
        {
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }

            File.SetUnixFileMode(temp, UnixFileMode.UserRead);
            return temp;
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
