namespace Morphisms.Serving.Runtime;

/// <summary>
/// The instances' own directories, <c>DATA/instances/ID/</c> (launch configuration, <c>secrets/</c>): each lives exactly
/// as long as its instance. The agent wipes the secrets when it stops, but one that is killed (or crashes, or dies with
/// a killed serving host) cannot, so the directory goes when the process has exited; what an earlier run of the host
/// left is removed when the runtime starts, and one found at launch anyway is cleared before the new instance gets it.
/// </summary>
internal sealed class InstanceDirectories
{
    private readonly object _gate = new();
    private readonly string _root;
    private readonly Action<string> _log;

    // Which launch holds each directory: an instance of a removed function that exits late must not delete the
    // directory a redeploy has since given to a new instance with the same id.
    private readonly Dictionary<string, Lease> _held = new(StringComparer.Ordinal);

    /// <summary>Takes over <c><paramref name="root"/>/instances</c>, removing what instances of an earlier run left there.</summary>
    public InstanceDirectories(string root, Action<string> log)
    {
        _root = root;
        _log = log;
        var instances = new DirectoryInfo(Path.Combine(root, "instances"));
        if (!instances.Exists)
        {
            return;
        }

        // No instance of this runtime exists yet, and instances die with the host that started them (die-with-parent).
        var left = 0;
        FileSystemInfo[] entries;
        try
        {
            entries = instances.GetFileSystemInfos();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Each launch still clears its own directory, or refuses to start.
            log($"runtime: could not list {instances.FullName} to remove what an earlier run left: {e.Message}");
            return;
        }

        foreach (var entry in entries)
        {
            try
            {
                Remove(entry.FullName);
                left++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                log($"runtime: could not remove {entry.FullName}, left by an earlier run: {e.Message}");
            }
        }

        if (left > 0)
        {
            log($"runtime: removed {left} instance director{(left == 1 ? "y" : "ies")} left by an earlier run (their secrets with them)");
        }
    }

    /// <summary>A fresh, empty directory for <paramref name="instanceId"/>, held until <see cref="Lease.Release"/>.</summary>
    /// <exception cref="InvalidOperationException">A running instance holds it, or what an earlier one left cannot be removed.</exception>
    public Lease Acquire(string instanceId)
    {
        var path = Path.GetFullPath(Path.Combine(_root, "instances", instanceId));
        lock (_gate)
        {
            if (_held.ContainsKey(path))
            {
                throw new InvalidOperationException($"runtime: the directory of instance {instanceId} is still held by a running instance");
            }

            if (Directory.Exists(path))
            {
                try
                {
                    Remove(path);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new InvalidOperationException($"runtime: refusing to start {instanceId}: {path} is left from an earlier run and cannot be removed ({e.Message}); it may hold that instance's secrets", e);
                }

                _log($"runtime: removed {path}, left by an instance of an earlier run");
            }

            Directory.CreateDirectory(path);
            var lease = new Lease(this, path);
            _held[path] = lease;
            return lease;
        }
    }

    private void Release(Lease lease)
    {
        lock (_gate)
        {
            if (!_held.TryGetValue(lease.Path, out var holder) || holder != lease)
            {
                return;
            }

            _held.Remove(lease.Path);
            try
            {
                Remove(lease.Path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not fatal now; the next start of the runtime, or the next launch under this id, clears it.
                _log($"runtime: could not remove {lease.Path}: {e.Message}");
            }
        }
    }

    // The instance owned what is in its directory, so it may have made a subdirectory unwritable (0500), which would
    // stop an unprivileged host's delete: such directories are made writable again, once, and the delete retried.
    // Symbolic links are removed, never followed.
    private static void Remove(string path)
    {
        var info = new DirectoryInfo(path);
        if (info.LinkTarget is not null || !info.Exists)
        {
            if (info.LinkTarget is not null || File.Exists(path))
            {
                File.Delete(path);
            }

            return;
        }

        try
        {
            info.Delete(recursive: true);
        }
        catch (Exception e) when ((e is IOException or UnauthorizedAccessException) && !OperatingSystem.IsWindows())
        {
            MakeWritable(info);
            info.Delete(recursive: true);
        }
    }

    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static void MakeWritable(DirectoryInfo directory)
    {
        directory.UnixFileMode |= UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        foreach (var child in directory.EnumerateDirectories())
        {
            if (child.LinkTarget is null)
            {
                MakeWritable(child);
            }
        }
    }

    /// <summary>One launch's hold on its directory.</summary>
    internal sealed class Lease(InstanceDirectories owner, string path)
    {
        /// <summary>The directory.</summary>
        public string Path { get; } = path;

        /// <summary>Removes the directory, unless another launch holds it by now; idempotent.</summary>
        public void Release() => owner.Release(this);
    }
}
