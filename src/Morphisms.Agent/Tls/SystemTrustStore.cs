using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Morphisms.Agent.Tls;

/// <summary>
/// Keeps the operating system's certificate authorities out of morph-init. The agent trusts no web PKI: the KMS is
/// pinned (<see cref="Morphisms.Attestation.Trust.KmsPin"/>, custom root trust) and the terminator serves a chain it was handed. Yet .NET builds
/// an X.509 chain against the system store whenever it makes a server certificate context, and loading that store
/// (~150 CA certificates, each a slow decode on OpenSSL 3.0) cost ~80 ms of CPU in every cold start, more than
/// attestation itself. Pointing <c>SSL_CERT_FILE</c> and <c>SSL_CERT_DIR</c> at nothing in the process's native
/// environment, before any TLS, leaves that store empty; a stray HTTPS call to a web-PKI host now fails instead of
/// trusting the OS's CAs. The app and its reload command still get the values the agent was started with.
/// </summary>
internal static partial class SystemTrustStore
{
    private const string FileVariable = "SSL_CERT_FILE";
    private const string DirectoryVariable = "SSL_CERT_DIR";
    private const string Nothing = "/dev/null";

    private static (string? File, string? Directory)? s_original;

    /// <summary>
    /// Empties the system trust store for this process. Call first thing in <c>Main</c>: OpenSSL reads the variables
    /// natively (the managed <see cref="Environment"/> is a copy and does not reach it) when the store is first loaded.
    /// </summary>
    public static void Hide()
    {
        if (!OperatingSystem.IsLinux() || s_original is not null)
        {
            return;
        }

        s_original = (Environment.GetEnvironmentVariable(FileVariable), Environment.GetEnvironmentVariable(DirectoryVariable));
        if (SetNative(FileVariable, Nothing, 1) != 0 || SetNative(DirectoryVariable, Nothing, 1) != 0)
        {
            // Only ENOMEM fails setenv; the store then simply loads as before.
            s_original = null;
        }
    }

    /// <summary>Gives a process the agent starts for the app (the app, its reload command) the variables as the agent received them (set, or absent), not the emptied ones.</summary>
    public static void RestoreFor(ProcessStartInfo app)
    {
        if (s_original is not { } original)
        {
            return;
        }

        Restore(app, FileVariable, original.File);
        Restore(app, DirectoryVariable, original.Directory);
    }

    private static void Restore(ProcessStartInfo app, string name, string? value)
    {
        if (value is null)
        {
            app.Environment.Remove(name);
        }
        else
        {
            app.Environment[name] = value;
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetNative(string name, string value, int overwrite);
}
