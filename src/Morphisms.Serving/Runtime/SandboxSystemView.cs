namespace Morphisms.Serving.Runtime;

/// <summary>
/// The part of the host every sandboxed instance sees, all of it read-only: the operating system's programs and
/// libraries, the files of <c>/etc</c> that the dynamic linker, name resolution, TLS, user lookup, time zones and the
/// .NET host read, and <c>/sys</c>. Nothing else: not <c>/home</c>, <c>/root</c>, <c>/opt</c>, <c>/var</c>,
/// <c>/run</c>, <c>/srv</c>, <c>/mnt</c>, the rest of <c>/etc</c>, nor any data directory. What one instance needs
/// beyond this (its bundle, the programs it runs, its own directory) the launcher names for that instance.
/// </summary>
internal static class SandboxSystemView
{
    /// <summary>Top-level directories of programs and libraries; on merged-/usr systems all but /usr are symlinks into it.</summary>
    internal static readonly string[] Roots = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

    /// <summary>What is shown of <c>/etc</c>, where present.</summary>
    internal static readonly string[] Etc =
    [
        // The dynamic linker's cache and configuration: multiarch libraries are found only through them.
        "ld.so.cache", "ld.so.conf", "ld.so.conf.d",

        // Name resolution: NSS, the resolver, hosts, services, address selection.
        "nsswitch.conf", "host.conf", "hosts", "resolv.conf", "gai.conf", "services", "protocols",

        // User and group names (a runtime asks getpwuid for the user's home); no password hashes (shadow).
        "passwd", "group",

        // CA certificates and OpenSSL's configuration in the Debian, Alpine and Fedora layouts; not ssl/private.
        "ssl/certs", "ssl/cert.pem", "ssl/openssl.cnf", "pki/tls/certs", "pki/tls/cert.pem", "pki/tls/openssl.cnf", "pki/ca-trust",
        "crypto-policies",

        // The time zone, the operating system's name (the .NET runtime reads both), the alternatives /usr/bin links go
        // through, and where a framework-dependent apphost finds the .NET runtime (dotnet/install_location).
        "localtime", "timezone", "os-release", "alternatives", "dotnet",
    ];

    /// <summary>The bubblewrap arguments that mount the view into an empty root.</summary>
    public static IEnumerable<string> Arguments()
    {
        foreach (var path in Roots.Concat(Etc.Select(e => "/etc/" + e)))
        {
            foreach (var argument in Mount(path))
            {
                yield return argument;
            }
        }

        // The cgroup limits the runtime applies are read from here (the .NET GC sizes its heap by the memory limit),
        // as are the CPUs online.
        yield return "--ro-bind";
        yield return "/sys";
        yield return "/sys";
    }

    private static string[] Mount(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not { } target)
        {
            return info.Exists || Directory.Exists(path) ? ["--ro-bind", path, path] : [];
        }

        var final = info.ResolveLinkTarget(returnFinalTarget: true)?.FullName;
        if (final is null || !(File.Exists(final) || Directory.Exists(final)))
        {
            return []; // dangling
        }

        // A link into the view stays a link (the .NET runtime names the local time zone after /etc/localtime's target,
        // and /bin must stay usr/bin); a link elsewhere (resolv.conf into /run, say) is shown as what it points to.
        return Roots.Any(root => final.StartsWith(root + "/", StringComparison.Ordinal))
            ? ["--symlink", target, path]
            : ["--ro-bind", path, path];
    }
}
