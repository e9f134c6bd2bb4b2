using System.Text;

namespace Morphisms.Serving.Runtime;

/// <summary>
/// Splits an instance's output into lines without ever holding more than <c>maxLineLength</c> characters of one:
/// a longer line is handed on cut at the limit (flagged), and the rest of it is dropped up to the next line end. A
/// reader that buffers whole lines (<c>Process.BeginOutputReadLine</c>) grows with a line, so an app writing
/// gigabytes without a newline would exhaust the serving host's memory before <see cref="LogRing"/> could truncate.
/// Line ends are those of <see cref="TextReader.ReadLine"/>: <c>\n</c>, <c>\r</c> or <c>\r\n</c> (also split across
/// two reads); a last line without an end is handed on by <see cref="Complete"/>. Not thread-safe: one per stream.
/// </summary>
internal sealed class BoundedLineSplitter
{
    private readonly int _maxLineLength;
    private readonly Action<string, bool> _onLine;
    private readonly StringBuilder _line = new();
    private bool _discarding;
    private bool _afterCarriageReturn;

    /// <summary>Calls <paramref name="onLine"/> with each line and whether it was cut.</summary>
    public BoundedLineSplitter(int maxLineLength, Action<string, bool> onLine)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineLength, 1);
        _maxLineLength = maxLineLength;
        _onLine = onLine;
    }

    /// <summary>Consumes the next characters of the stream.</summary>
    public void Feed(ReadOnlySpan<char> chars)
    {
        while (!chars.IsEmpty)
        {
            if (_afterCarriageReturn)
            {
                _afterCarriageReturn = false;
                if (chars[0] == '\n')
                {
                    chars = chars[1..];
                    continue;
                }
            }

            var end = chars.IndexOfAny('\r', '\n');
            Append(end < 0 ? chars : chars[..end]);
            if (end < 0)
            {
                return;
            }

            _afterCarriageReturn = chars[end] == '\r';
            EndLine();
            chars = chars[(end + 1)..];
        }
    }

    /// <summary>The stream ended: hands on a last line that had no line end.</summary>
    public void Complete()
    {
        if (!_discarding && _line.Length > 0)
        {
            Emit(cut: false);
        }

        _discarding = false;
    }

    private void Append(ReadOnlySpan<char> part)
    {
        if (_discarding)
        {
            return;
        }

        var room = _maxLineLength - _line.Length;
        if (part.Length <= room)
        {
            _line.Append(part);
            return;
        }

        _line.Append(part[..room]);
        Emit(cut: true);
        _discarding = true;
    }

    private void EndLine()
    {
        if (_discarding)
        {
            // The line was handed on when it reached the limit; its end only ends the discarding.
            _discarding = false;
            return;
        }

        Emit(cut: false);
    }

    private void Emit(bool cut)
    {
        var line = _line.ToString();
        _line.Clear();
        _onLine(line, cut);
    }
}
