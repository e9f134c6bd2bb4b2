using System.Runtime.InteropServices;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Where the programs an instance runs live, so that its sandbox can show them read-only beside the system view: the
/// .NET runtime, morph-init and the app may be installed anywhere (<c>~/.dotnet</c>, <c>/opt</c>, a build directory).
/// </summary>
internal static class ProgramLocations
{
    /// <summary>
    /// What <paramref name="command"/> reads to start: the directory of its program — looked up on
    /// <paramref name="searchPath"/> when it is a bare name, as the sandbox's own lookup will — and the directory its
    /// symlinks lead to (the .NET host finds its runtime beside its real path); the directory of every rooted file
    /// argument (<c>dotnet /x/app.dll</c> loads the app's dependencies beside it) and every rooted directory argument.
    /// </summary>
    public static IEnumerable<string> ForCommand(IReadOnlyList<string> command, string? searchPath)
    {
        if (Find(command[0], searchPath) is { } program)
        {
            yield return Path.GetDirectoryName(program)!;
            if (Posix.RealPath(program) is { } real)
            {
                yield return Path.GetDirectoryName(real)!;
            }
        }

        foreach (var argument in command.Skip(1).Where(Path.IsPathRooted))
        {
            yield return File.Exists(argument) ? Path.GetDirectoryName(argument)! : argument;
        }
    }

    /// <summary>
    /// The .NET installation a framework-dependent apphost started with <paramref name="environment"/> looks for:
    /// <c>DOTNET_ROOT_&lt;ARCH&gt;</c>, <c>DOTNET_ROOT</c>, then the one registered in <c>/etc/dotnet</c> (the default
    /// locations are under <c>/usr</c>, in the system view already). <c>dotnet X.dll</c> needs none of them: its runtime
    /// is beside the real path of <c>dotnet</c> (<see cref="ForCommand"/>).
    /// </summary>
    public static IEnumerable<string> DotnetRoots(IDictionary<string, string?> environment)
    {
        var arch = RuntimeInformation.OSArchitecture.ToString().ToUpperInvariant();
        foreach (var name in new[] { $"DOTNET_ROOT_{arch}", "DOTNET_ROOT" })
        {
            if (environment.TryGetValue(name, out var root) && root is { Length: > 0 } && Path.IsPathRooted(root))
            {
                yield return root;
            }
        }

        foreach (var file in new[] { $"/etc/dotnet/install_location_{arch.ToLowerInvariant()}", "/etc/dotnet/install_location" })
        {
            if (RegisteredLocation(file) is { } registered)
            {
                yield return registered;
            }
        }
    }

    private static string? Find(string program, string? searchPath)
    {
        if (Path.IsPathRooted(program))
        {
            return File.Exists(program) ? program : null;
        }

        // A relative path with a slash is not looked up (execvp runs it from the working directory: the bundle).
        if (program.Contains('/', StringComparison.Ordinal))
        {
            return null;
        }

        return (searchPath ?? "")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Where(Path.IsPathRooted)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);
    }

    private static string? RegisteredLocation(string file)
    {
        try
        {
            return File.Exists(file) && File.ReadLines(file).FirstOrDefault()?.Trim() is { Length: > 0 } line && Path.IsPathRooted(line) ? line : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
