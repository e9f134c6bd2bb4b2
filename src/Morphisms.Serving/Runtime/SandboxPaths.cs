namespace Morphisms.Serving.Runtime;

/// <summary>
/// Vets the paths an instance's sandbox would show read-only. They come from the spec, the bundle and the environment —
/// input the serving host does not control — so each is resolved to what bubblewrap would really mount (symlinks and
/// <c>..</c> followed) and refused when it would show the whole host, its kernel interfaces or the host's own state.
/// </summary>
internal static class SandboxPaths
{
    // The kernel's and the session's interfaces: the sandbox gets its own /dev and /proc, and /sys, /run only through the
    // system view; /dev/shm and /run hold other processes' state.
    private static readonly string[] SystemInterfaces = ["/dev", "/proc", "/sys", "/run"];

    /// <summary>
    /// The real paths to bind for <paramref name="paths"/> (those that do not exist are left out, as bubblewrap would),
    /// a .NET installation narrowed to what starting a program needs (<see cref="DotnetRootParts"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">A path resolves to <c>/</c>, a system interface, or a protected path or one
    /// containing it; the message names the path and why.</exception>
    public static IReadOnlyList<string> Resolve(IEnumerable<string> paths, IReadOnlyList<string> protectedPaths)
    {
        var protectedReal = protectedPaths.Where(p => p.Length > 0).Select(p => Posix.RealPath(p) ?? Path.GetFullPath(p)).ToList();
        List<string> resolved = [];
        foreach (var path in paths)
        {
            if (Posix.RealPath(path) is not { } real)
            {
                continue;
            }

            if (Refusal(real, protectedReal) is { } why)
            {
                var shown = real == path ? path : $"{path} (really {real})";
                throw new InvalidOperationException($"refusing to start: the sandbox would show {shown}, which {why}");
            }

            resolved.AddRange(DotnetRootParts(real) ?? [real]);
        }

        return [.. resolved.Distinct(StringComparer.Ordinal)];
    }

    /// <summary>
    /// For a .NET installation (a directory holding <c>dotnet</c> and <c>shared/</c>), the parts a program needs: the
    /// host, its resolver and the shared frameworks (and the targeting packs). Not the rest: a user's <c>~/.dotnet</c> also
    /// holds <c>corefx/cryptography/x509stores</c> (the private keys of their certificate store) and global tools.
    /// Null for any other directory.
    /// </summary>
    public static IReadOnlyList<string>? DotnetRootParts(string directory)
    {
        if (!File.Exists(Path.Combine(directory, "dotnet")) || !Directory.Exists(Path.Combine(directory, "shared")))
        {
            return null;
        }

        return [.. new[] { "dotnet", "host", "shared", "packs" }.Select(part => Path.Combine(directory, part)).Where(p => File.Exists(p) || Directory.Exists(p))];
    }

    private static string? Refusal(string real, IReadOnlyList<string> protectedReal)
    {
        if (real == "/")
        {
            return "is the host's whole file system";
        }

        if (SystemInterfaces.FirstOrDefault(system => IsSameOrUnder(real, system)) is { } interfaceDir)
        {
            return $"is the host's {interfaceDir}";
        }

        foreach (var guarded in protectedReal)
        {
            if (IsSameOrUnder(real, guarded))
            {
                return $"is inside {guarded}, the serving host's own state";
            }

            if (IsSameOrUnder(guarded, real))
            {
                return $"contains {guarded}, the serving host's own state";
            }
        }

        return null;
    }

    private static bool IsSameOrUnder(string path, string directory) =>
        path == directory || path.StartsWith(directory.TrimEnd('/') + "/", StringComparison.Ordinal);
}
