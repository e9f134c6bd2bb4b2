using System.Reflection;
using System.Runtime.InteropServices;
using Net.Pkcs11Interop.HighLevelAPI;

namespace Morphisms.Kms.AutoUnseal;

/// <summary>
/// Pkcs11Interop 5.3.0 P/Invokes <c>libdl</c> to load modules; glibc ≥ 2.34 (Debian 12) ships only
/// <c>libdl.so.2</c>, so without this resolver every load fails with <c>DllNotFoundException: libdl</c>.
/// </summary>
internal static class Pkcs11Native
{
    private static int _registered;

    /// <summary>Registers the resolver once per process (a second registration for the assembly would throw).</summary>
    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1)
        {
            return;
        }

        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // The host registered its own resolver already; trust it to find libdl.
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        name == "libdl" && OperatingSystem.IsLinux() && NativeLibrary.TryLoad("libdl.so.2", out var handle) ? handle : IntPtr.Zero;
}
