namespace Morphisms.Serving.Runtime;

/// <summary>
/// The last lines an instance wrote to stdout and stderr, for <c>morph logs</c>. Bounded in lines and in line
/// length, so a chatty or hostile app cannot make the runtime's memory grow.
/// </summary>
public sealed class LogRing(int capacity, int maxLineLength = 4096)
{
    private readonly Queue<LogLine> _lines = new();
    private readonly Lock _gate = new();

    /// <summary>Appends a line, dropping the oldest when full.</summary>
    public void Add(DateTimeOffset time, string stream, string text)
    {
        if (text.Length > maxLineLength)
        {
            text = string.Concat(text.AsSpan(0, maxLineLength), "…");
        }

        lock (_gate)
        {
            if (_lines.Count >= capacity)
            {
                _lines.Dequeue();
            }

            _lines.Enqueue(new LogLine(time, stream, text));
        }
    }

    /// <summary>The retained lines, oldest first.</summary>
    public IReadOnlyList<LogLine> Snapshot()
    {
        lock (_gate)
        {
            return [.. _lines];
        }
    }
}

/// <summary>One captured output line.</summary>
/// <param name="Time">When it was read.</param>
/// <param name="Stream"><c>stdout</c>, <c>stderr</c> or <c>runtime</c> (the runtime's own notes about the instance).</param>
/// <param name="Text">The line.</param>
public sealed record LogLine(DateTimeOffset Time, string Stream, string Text);
