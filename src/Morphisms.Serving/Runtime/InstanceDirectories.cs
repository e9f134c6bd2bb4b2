namespace Morphisms.Serving.Runtime;

/// <summary>
/// The instances' own directories, <c>DATA/instances/ID/</c> (launch configuration, <c>secrets/</c>): each lives exactly
/// as long as its instance. The agent wipes the secrets when it stops, but one that is killed (or crashes, or dies with
/// a killed serving host) cannot, so the directory goes when the process has exited, and one found at launch — left by
/// an earlier run of the host, since ids repeat across runs — is cleared before the new instance gets it.
/// </summary>
internal sealed class InstanceDirectories(string root, Action<string> log)
{
    private readonly object _gate = new();

    // Which launch holds each directory: an instance of a removed function that exits late must not delete the
    // directory a redeploy has since given to a new instance with the same id.
    private readonly Dictionary<string, Lease> _held = new(StringComparer.Ordinal);

    /// <summary>A fresh, empty directory for <paramref name="instanceId"/>, held until <see cref="Lease.Release"/>.</summary>
    /// <exception cref="InvalidOperationException">A running instance holds it, or what an earlier one left cannot be removed.</exception>
    public Lease Acquire(string instanceId)
    {
        var path = Path.GetFullPath(Path.Combine(root, "instances", instanceId));
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
                    Directory.Delete(path, recursive: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new InvalidOperationException($"runtime: refusing to start {instanceId}: {path} is left from an earlier run and cannot be removed ({e.Message}); it may hold that instance's secrets", e);
                }

                log($"runtime: removed {path}, left by an instance of an earlier run");
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
                Directory.Delete(lease.Path, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Not fatal now; the next launch under this id clears it, or refuses to start.
                log($"runtime: could not remove {lease.Path}: {e.Message}");
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
