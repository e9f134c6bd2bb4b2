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

    /// <summary>Runs before each staged file is renamed over its target (given the secret's name), so a test can make that fail.</summary>
    internal Action<string>? BeforeReplaceForTests { get; set; }

    /// <summary>
    /// Writes the bundle's files and removes files it no longer has; returns true when anything changed. Every new
    /// content is written to a temporary file first: if one cannot be written (a full tmpfs), the temporaries go and
    /// no secret has changed. Then each is renamed over its file, one at a time: a rename that fails (the app, which
    /// shares the directory's owner, put a directory under the name meanwhile) stops the update there, its temporaries
    /// and those not yet renamed are removed, and the <see cref="SecretUpdateException"/> names what had changed.
    /// </summary>
    /// <exception cref="SecretUpdateException">A file could not be replaced or removed; <see cref="SecretUpdateException.Changed"/> says which had been (none: nothing changed).</exception>
    /// <exception cref="IOException">A file could not be staged; nothing was replaced.</exception>
    public bool Apply(IReadOnlyDictionary<string, byte[]> files)
    {
        var staged = new List<(string Name, string Temp, string Target)>();
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
                    staged.Add((name, Stage(content), target));
                }
            }
        }
        catch
        {
            RemoveTemporaries(staged);
            throw;
        }

        // Several renames cannot be one atomic step without changing what the app sees (a symlinked directory
        // swapped as a whole): a failure part-way leaves the files renamed so far, which the caller must be told of,
        // so it neither reports the old version nor withholds the reload the app needs for the files that changed.
        var changed = new List<string>();
        var next = 0;
        try
        {
            for (; next < staged.Count; next++)
            {
                var (name, temp, target) = staged[next];
                BeforeReplaceForTests?.Invoke(name);
                File.Move(temp, target, overwrite: true);
                changed.Add(name);
            }

            foreach (var existing in Directory.EnumerateFiles(Path))
            {
                var name = System.IO.Path.GetFileName(existing);
                if (!files.ContainsKey(name))
                {
                    File.Delete(existing);
                    changed.Add(name);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The temporary that failed to move and those after it: 0400 copies of secrets the app was not given.
            RemoveTemporaries(staged.Skip(next));
            var done = changed.Count == 0 ? "nothing was changed" : $"already changed: {string.Join(", ", changed.Select(n => $"'{n}'"))}";
            throw new SecretUpdateException($"the secret files could not all be updated ({e.Message}); {done}", changed, e);
        }

        return changed.Count > 0;
    }

    // Best effort: a temporary that cannot be deleted must not hide the failure that is being reported.
    private static void RemoveTemporaries(IEnumerable<(string Name, string Temp, string Target)> staged)
    {
        foreach (var (_, temp, _) in staged)
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
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

/// <summary>
/// A secret update that stopped part-way: the files in <see cref="Changed"/> (by secret name, never content) were
/// replaced or removed before the failure, the others are as they were, and no temporary is left behind.
/// </summary>
public sealed class SecretUpdateException(string message, IReadOnlyList<string> changed, Exception inner) : IOException(message, inner)
{
    /// <summary>The secret files replaced or removed before the failure (empty: no secret changed).</summary>
    public IReadOnlyList<string> Changed { get; } = changed;
}
