using System.Diagnostics;
using System.Runtime.InteropServices;
using Morphisms.Kms.AutoUnseal;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace Morphisms.Kms.Tests.AutoUnseal;

/// <summary>
/// A real SoftHSM2 token in a temp directory. SOFTHSM2_CONF is process-wide and read when the module initialises,
/// so every test that uses one runs in <see cref="SoftHsmCollection"/> (never in parallel with another).
/// </summary>
internal sealed class SoftHsmToken : IDisposable
{
    public const string Library = "/usr/lib/softhsm/libsofthsm2.so";
    public const string Label = "kms-test";
    public const string Pin = "5678";

    private SoftHsmToken(string directory) => Directory = directory;

    public string Directory { get; }

    public string PinFile => Path.Combine(Directory, "pin");

    /// <summary>Creates and initialises a token; fails (never skips) when SoftHSM2 is missing, as CI installs it.</summary>
    public static SoftHsmToken Create()
    {
        if (!File.Exists(Library) || FindUtil() is not { } util)
        {
            Assert.Fail($"SoftHSM2 is not installed ({Library} and softhsm2-util are needed): run scripts/install-test-deps.sh or apt-get install softhsm2");
            throw new InvalidOperationException();
        }

        var dir = System.IO.Directory.CreateTempSubdirectory("kms-softhsm-").FullName;
        System.IO.Directory.CreateDirectory(Path.Combine(dir, "tokens"));
        var conf = Path.Combine(dir, "softhsm2.conf");
        File.WriteAllText(conf, $"directories.tokendir = {Path.Combine(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n");
        SetNativeEnvironment("SOFTHSM2_CONF", conf);
        var start = new ProcessStartInfo(util, ["--init-token", "--free", "--label", Label, "--so-pin", "1234", "--pin", Pin])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["SOFTHSM2_CONF"] = conf;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, "softhsm2-util --init-token failed: " + output);
        var token = new SoftHsmToken(dir);
        File.WriteAllText(token.PinFile, Pin + "\n");
        return token;
    }

    public Pkcs11SealOptions Options(string keyLabel = "kms-root-wrap") =>
        new() { LibraryPath = Library, TokenLabel = Label, KeyLabel = keyLabel, PinFile = PinFile };

    /// <summary>Runs <paramref name="action"/> on a logged-in session, as an HSM administrator would.</summary>
    public static void WithSession(Action<Pkcs11InteropFactories, ISession> action)
    {
        Pkcs11Native.EnsureResolver();
        var factories = new Pkcs11InteropFactories();
        using var library = factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, Library, AppType.MultiThreaded);
        var slot = library.GetSlotList(SlotsType.WithTokenPresent).Single(s => s.GetTokenInfo().Label.TrimEnd() == Label);
        using var session = slot.OpenSession(SessionType.ReadWrite);
        session.Login(CKU.CKU_USER, Pin);
        action(factories, session);
        session.Logout();
    }

    public void Dispose()
    {
        SetNativeEnvironment("SOFTHSM2_CONF", null);
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    /// <summary>
    /// .NET's Environment.SetEnvironmentVariable only changes the managed copy on Unix; SoftHSM reads the C
    /// environment with getenv, so the variable is set there too.
    /// </summary>
    private static void SetNativeEnvironment(string name, string? value)
    {
        Environment.SetEnvironmentVariable(name, value);
        Assert.Equal(0, value is null ? UnsetEnv(name) : SetEnv(name, value, 1));
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    [DllImport("libc", EntryPoint = "unsetenv")]
    private static extern int UnsetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    private static string? FindUtil() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(p => Path.Combine(p, "softhsm2-util")).FirstOrDefault(File.Exists);
}

/// <summary>Serialises the SoftHSM2 tests: SOFTHSM2_CONF is process-global.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SoftHsmCollection
{
    public const string Name = "softhsm";
}
