using System.IO.Enumeration;
using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Spec;

/// <summary>
/// Vets the symlinks inside a function bundle. Measuring a bundle follows them (a file link is measured as its target's
/// content, a directory link's files are listed through it), at deploy on the host and again at launch inside the
/// instance's sandbox, which shows the bundle's real directory and not what is around it. So a link that leads out of
/// the bundle would be measured at deploy from a file the instance cannot see, and the instance would never start; and
/// directory links that lead round to themselves would have the deploy list the same files over and over.
/// </summary>
internal static class BundleLinks
{
    /// <summary>The first problem with the links in <paramref name="root"/> (a real path), or null when there is none.</summary>
    public static string? Problem(string root)
    {
        var links = new FileSystemEnumerable<(string Path, bool Directory)>(
            root,
            (ref FileSystemEntry entry) => (entry.ToFullPath(), entry.IsDirectory),
            new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
        {
            ShouldIncludePredicate = (ref FileSystemEntry entry) => (entry.Attributes & FileAttributes.ReparsePoint) != 0,
            // Each link is checked where it is, never walked through: the walk itself cannot go round.
            ShouldRecursePredicate = (ref FileSystemEntry entry) => (entry.Attributes & FileAttributes.ReparsePoint) == 0,
        };

        List<(string Path, string Real)> directories = [];
        foreach (var (path, isDirectory) in links)
        {
            var target = new FileInfo(path).LinkTarget ?? "";
            // Both as written and as resolved: an absolute target through a symlinked ancestor (the bundle's own path as
            // function.yaml gave it, say) resolves inside on the host but does not exist in the sandbox.
            if (!IsSameOrUnder(Path.GetFullPath(target, Path.GetDirectoryName(path)!), root))
            {
                return $"{path} is a symlink to {target}, outside the bundle: the instance sees only the bundle, so copy what it needs into it";
            }

            if (Posix.RealPath(path) is not { } real)
            {
                return $"{path} is a symlink to {target}, which does not exist (or leads round)";
            }

            if (!IsSameOrUnder(real, root))
            {
                return $"{path} is a symlink to {target}, which leads to {real}, outside the bundle: the instance sees only the bundle, so copy what it needs into it";
            }

            if (isDirectory)
            {
                directories.Add((path, real));
            }
        }

        // A directory link whose target holds a directory link (itself included) whose target holds … that first one.
        foreach (var (path, _) in directories)
        {
            if (LeadsRound(path, path, directories, []))
            {
                return $"{path} is a symlink to a directory that leads round to itself (through directory links): measuring the bundle would list it over and over";
            }
        }

        return null;
    }

    private static bool LeadsRound(string start, string link, List<(string Path, string Real)> directories, HashSet<string> seen)
    {
        var real = directories.First(d => d.Path == link).Real;
        foreach (var (inside, _) in directories.Where(d => IsSameOrUnder(d.Path, real)))
        {
            if (inside == start || (seen.Add(inside) && LeadsRound(start, inside, directories, seen)))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsSameOrUnder(string path, string directory) =>
        path == directory || path.StartsWith(directory.TrimEnd('/') + "/", StringComparison.Ordinal);
}
