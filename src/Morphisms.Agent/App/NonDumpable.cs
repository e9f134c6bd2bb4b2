using System.Runtime.InteropServices;

namespace Morphisms.Agent.App;

/// <summary>
/// Keeps the app out of morph-init's memory. The app is the agent's child under the same uid, and for the same uid the
/// kernel lets one process read another's <c>/proc/PID/environ</c> (where a <c>MORPH_REPORT_TOKEN</c> given by hand
/// stays: taking it out of the environment does not erase the copy the kernel made at execve; the serving host passes
/// the token in a file instead, see <see cref="Telemetry.ReportTokenHandOver"/>), open its <c>/proc/PID/mem</c> and
/// ptrace it; that is the instance's TLS private key, its KMS token and its report token, which are the agent's alone. A
/// process that is not dumpable is exempt from all three unless the reader holds a capability that overrides the check
/// (<c>CAP_SYS_PTRACE</c>; for <c>environ</c> also <c>CAP_SYS_ADMIN</c> or <c>CAP_PERFMON</c>), its <c>/proc/PID</c>
/// files belong to root, and it leaves no core dump. Its own <c>/proc/self</c> stays readable to it.
/// The flag is reset at execve for a program run with unchanged credentials, so the app and the reload command are
/// dumpable as usual: only the agent is guarded.
/// </summary>
internal static class NonDumpable
{
    /// <summary>
    /// Clears this process's dumpable flag. Call first thing in <c>Main</c>, before the agent makes a key or takes a
    /// token, and before it starts any child. Returns null on success, else what failed (no secret in it).
    /// </summary>
    public static string? Apply()
    {
        if (Posix.Prctl(Posix.PrSetDumpable, 0) != 0)
        {
            return $"prctl(PR_SET_DUMPABLE, 0) failed: {Marshal.GetLastPInvokeErrorMessage()}";
        }

        // A kernel or library OS that accepts the call without honouring it would otherwise pass for one that does.
        var now = Posix.Prctl(Posix.PrGetDumpable, 0);
        return now == 0 ? null : $"prctl(PR_GET_DUMPABLE) answers {now} after PR_SET_DUMPABLE 0";
    }
}
