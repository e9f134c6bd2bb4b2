using System.Globalization;

namespace Morphisms.Attestation;

/// <summary>A process's live descendants, read from <c>/proc</c> (Linux): what serving signals inside a sandbox and what the agent searches for the app's listener.</summary>
public static class ProcessTree
{
    /// <summary>
    /// The descendants of <paramref name="root"/>, nearest first, from one scan of <paramref name="proc"/>'s
    /// <c>PID/stat</c> files; processes that exit during the scan are left out.
    /// </summary>
    public static IReadOnlyList<int> Descendants(int root, string proc = "/proc")
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories(proc))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // exited meanwhile, or not ours to read
            }

            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the fields start after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields.Length > 1 && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var parent))
            {
                (children.TryGetValue(parent, out var list) ? list : children[parent] = []).Add(pid);
            }
        }

        var found = new List<int>();
        var pending = new Queue<int>([root]);
        while (pending.TryDequeue(out var pid))
        {
            if (children.TryGetValue(pid, out var list))
            {
                foreach (var child in list)
                {
                    found.Add(child);
                    pending.Enqueue(child);
                }
            }
        }

        return found;
    }
}
