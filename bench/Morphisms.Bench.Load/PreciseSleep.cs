using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Morphisms.Bench.Load;

/// <summary>
/// Sleeps until a <see cref="Stopwatch"/> timestamp with sub-millisecond precision: on Linux, Stopwatch ticks are
/// CLOCK_MONOTONIC nanoseconds, so the deadline goes to <c>clock_nanosleep(TIMER_ABSTIME)</c> as it is.
/// <see cref="Thread.Sleep(TimeSpan)"/> rounds to whole milliseconds, and Task.Delay adds a timer and a thread-pool hop.
/// </summary>
internal static partial class PreciseSleep
{
    private const int ClockMonotonic = 1;
    private const int TimerAbsolute = 1;
    private const int Interrupted = 4; // EINTR

    /// <summary>Returns at (or just after) <paramref name="timestamp"/>; at once if it has passed.</summary>
    public static void Until(long timestamp)
    {
        if (Stopwatch.Frequency == 1_000_000_000)
        {
            var deadline = new Timespec { Seconds = timestamp / 1_000_000_000, Nanoseconds = timestamp % 1_000_000_000 };
            while (ClockNanosleep(ClockMonotonic, TimerAbsolute, in deadline, IntPtr.Zero) == Interrupted)
            {
            }

            return;
        }

        var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), timestamp);
        if (wait > TimeSpan.Zero)
        {
            Thread.Sleep(TimeSpan.FromMilliseconds(Math.Ceiling(wait.TotalMilliseconds)));
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    // clock_nanosleep returns the error number itself (not -1 and errno).
    [LibraryImport("libc", EntryPoint = "clock_nanosleep")]
    private static partial int ClockNanosleep(int clock, int flags, in Timespec request, IntPtr remaining);
}
