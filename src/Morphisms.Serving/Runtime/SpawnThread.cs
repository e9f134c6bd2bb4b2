using System.Collections.Concurrent;
using System.Diagnostics;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Starts instance processes from one dedicated thread that lives as long as serving does.
/// </summary>
/// <remarks>
/// bubblewrap's <c>--die-with-parent</c> is <c>PR_SET_PDEATHSIG</c>, and Linux sends that signal when the <em>thread</em>
/// that forked the sandbox exits, not the process. Started from a thread-pool thread, an instance was SIGKILLed (exit
/// 137, in-flight requests lost) whenever the pool retired that thread, typically tens of seconds into serving. A
/// thread that never exits keeps the guarantee meant by the flag: the sandbox dies with serving, and only then.
/// </remarks>
internal static class SpawnThread
{
    private static readonly BlockingCollection<Action> Work = [];
    private static readonly Thread Spawner = StartSpawner();

    /// <summary>Starts <paramref name="process"/> on the spawn thread and waits for it; throws what <see cref="Process.Start()"/> throws.</summary>
    public static void Start(Process process)
    {
        ArgumentNullException.ThrowIfNull(process);
        if (Thread.CurrentThread == Spawner)
        {
            process.Start();
            return;
        }

        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Work.Add(() =>
        {
            try
            {
                process.Start();
                started.SetResult();
            }
            catch (Exception e)
            {
                // Handed back to the caller, which rethrows it; the spawn thread itself must survive any start failure.
                started.SetException(e);
            }
        });
        started.Task.GetAwaiter().GetResult();
    }

    private static Thread StartSpawner()
    {
        var thread = new Thread(() =>
        {
            foreach (var spawn in Work.GetConsumingEnumerable())
            {
                spawn();
            }
        })
        {
            IsBackground = true,
            Name = "morph instance spawner",
        };
        thread.Start();
        return thread;
    }
}
