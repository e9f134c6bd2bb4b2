using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Kms.Audit;

/// <summary>
/// The append-only audit file. Each line carries a sequence number and chains to the previous line (see
/// <see cref="AuditChain"/>); after a restart it continues from the last complete line. A line torn by a crash
/// is cut off and the cut is itself recorded as a notice entry, so the chain stays verifiable. A line whose write
/// fails (a full disk) is cut off at once, so the next entry takes its sequence number and chains as if it had never
/// been written; if that cut fails too, the log refuses every later append until it is opened again. A file found
/// shorter than what was written (logrotate's copytruncate) is continued at its new end after a notice that names
/// the previous entry. Lines are written but not fsync'd: durable against a process crash, not a power loss.
/// </summary>
internal sealed class AuditLog : IDisposable
{
    private const int InitialLineBytes = 4096;
    private const int RetainedLineBytes = 256 * 1024;

    private readonly Stream _file;
    private readonly string _path;
    private readonly AuditKeys _keys;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private long _seq;
    private string _prevHash = AuditChain.Genesis;
    private string _prevMac = "";
    private ArrayBufferWriter<byte> _line = new(InitialLineBytes);
    private bool _disposed;

    // Where the last complete line ends: a failed write is cut back to here.
    private long _end;

    // Set when a failed write could not be cut back: the file then ends in part of a line (or a whole line the
    // chain state does not know), and any entry written after it would read as a gap or a forgery.
    private string? _failed;

    // Not validating: the body is deliberately left open (the chain suffix closes it), and its shape is fixed here.
    private readonly Utf8JsonWriter _writer = new(Stream.Null, new JsonWriterOptions { SkipValidation = true });

    private AuditLog(Stream file, string path, AuditKeys keys, TimeProvider time)
    {
        _file = file;
        _path = path;
        _keys = keys;
        _time = time;
    }

    /// <summary>The log file path.</summary>
    public string Path => _path;

    /// <summary>
    /// The sequence number and hash of the last entry in the log: the last this KMS appended, or the file's last at
    /// open. Every entry up to it was written to the file (handed to the kernel with one <c>write</c>, not fsync'd, so
    /// it survives a KMS crash but a power loss can lose it), so a log file without it was cut or replaced under the
    /// running KMS.
    /// </summary>
    public (long Sequence, string Hash) Head
    {
        get
        {
            lock (_lock)
            {
                return (_seq, _prevHash);
            }
        }
    }

    /// <summary>Opens (creating if needed) the log and positions after its last complete entry.</summary>
    public static AuditLog Open(string path, AuditKeys keys, TimeProvider time) =>
        Open(path, keys, time, static (p, options) => new FileStream(p, options));

    /// <summary>As <see cref="Open(string, AuditKeys, TimeProvider)"/>, opening the file through <paramref name="openFile"/> (tests wrap it in a failing stream).</summary>
    internal static AuditLog Open(string path, AuditKeys keys, TimeProvider time, Func<string, FileStreamOptions, Stream> openFile)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(fullPath);
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        // Unbuffered: FileStream's buffer is cleared only by a write that succeeds, so a line whose flush failed
        // stayed in it and went out ahead of the next entry, under the same sequence number (a false tampering alarm);
        // and cutting a failed line back (SetLength) would first try to write that buffer again, on a disk still full.
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.Read, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var file = openFile(fullPath, options);
        var log = new AuditLog(file, fullPath, keys, time);
        try
        {
            log.Recover();
        }
        catch
        {
            file.Dispose();
            throw;
        }

        return log;
    }

    /// <summary>Appends one entry; <paramref name="fields"/> must not contain <c>seq</c>, <c>prev</c>, <c>hash</c> or <c>mac</c>.</summary>
    /// <exception cref="ObjectDisposedException">The log was closed (the KMS sealed).</exception>
    public void Append(JsonObject fields)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_failed is not null)
            {
                // Try the cut again: once the disk is back this clears the failure. Waiting for a reopen would not do,
                // since sys/seal is audited itself and so could never get through to close the log.
                _failed = null;
                CutBack();
                if (_failed is not null)
                {
                    throw new IOException(_failed);
                }
            }

            // logrotate's copytruncate (or anyone) truncated the file under the KMS: the next line goes at the file's
            // new end, not at the remembered offset behind a run of zero bytes, and a notice that chains to the last
            // entry written first says so and carries what a verifier needs to check the file from there on.
            var length = _file.Length;
            if (length < _end)
            {
                ContinueAfterTruncation(length);
            }

            WriteEntry(fields);
        }
    }

    /// <summary>
    /// Continues the chain at the end of a file found shorter than what the KMS wrote: a notice entry (the next
    /// sequence number, <c>prev</c> the last hash as always) that also names the previous entry's sequence, hash and
    /// MAC in <c>continues</c>, so <see cref="AuditLogVerifier"/> can verify a file that begins with it (a rotated
    /// log's new file) with the MACs, and reports it as a truncation anywhere else.
    /// </summary>
    private void ContinueAfterTruncation(long length)
    {
        var from = _end;
        _file.Position = length;
        _end = length;
        try
        {
            WriteEntry(new JsonObject
            {
                ["type"] = "notice",
                ["notice"] = string.Create(CultureInfo.InvariantCulture, $"the log was truncated under the running KMS (from {from} to {length} bytes: rotated with copytruncate, or cut); the chain continues from entry {_seq}"),
                [AuditChain.ContinuesField] = new JsonObject { ["seq"] = _seq, ["hash"] = _prevHash, ["mac"] = _prevMac },
            });
        }
        catch
        {
            // The next append finds the file short again and writes the notice then.
            _end = from;
            throw;
        }
    }

    /// <summary>Builds and writes one entry after the last, under the lock.</summary>
    private void WriteEntry(JsonObject fields)
    {
        // Every request writes two or three entries, so the line is built as UTF-8 in one buffer reused under
        // the lock; building it as strings was most of the KMS's garbage under login load. The bytes are those
        // the verifier hashes: it re-encodes the body it reads, and Utf8JsonWriter escapes as the serialiser does.
        var seq = _seq + 1;
        _line.ResetWrittenCount();
        _writer.Reset(_line);
        _writer.WriteStartObject();
        _writer.WriteNumber("seq", seq);
        _writer.WriteString("time", Http.Timestamps.Rfc3339(_time.GetUtcNow()));
        foreach (var (key, value) in fields)
        {
            _writer.WritePropertyName(key);
            if (value is null)
            {
                _writer.WriteNullValue();
            }
            else
            {
                value.WriteTo(_writer);
            }
        }

        _writer.WriteString("prev", _prevHash);
        _writer.Flush();
        var hash = AuditChain.HashBody(_line.WrittenSpan);
        var mac = AuditChain.Mac(_keys.ChainKey, _prevMac, hash);
        Encoding.UTF8.GetBytes(AuditChain.Suffix(hash, mac) + "\n", _line);
        try
        {
            // One write of the whole line: a failure leaves at most this line's bytes after _end.
            _file.Write(_line.WrittenSpan);
            _file.Flush();
        }
        catch
        {
            CutBack();
            throw;
        }

        _end += _line.WrittenCount;
        _seq = seq;
        _prevHash = hash;
        _prevMac = mac;
        if (_line.Capacity > RetainedLineBytes)
        {
            // One huge entry (a large secret's hashed shape) should not pin its buffer for the process's life.
            _line = new ArrayBufferWriter<byte>(InitialLineBytes);
        }
    }

    /// <summary>Closes the file once any append in progress has written its whole line; later appends throw.</summary>
    public void Dispose()
    {
        // Under the append lock: a seal closing the log while a request appends must not close the file (or the
        // writer) under that write, which failed the request with a 500 and could leave a torn line.
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _writer.Dispose();
            _file.Dispose();
        }
    }

    /// <summary>
    /// Cuts the file back to the end of the last complete line after a failed write, so the next entry (which reuses
    /// the sequence number) follows it directly; if that fails, marks the log failed instead of writing after the rest
    /// (the next append tries again).
    /// </summary>
    private void CutBack()
    {
        try
        {
            _file.SetLength(_end);
            _file.Position = _end;
        }
        catch (Exception e)
        {
            // Opening the log again (unsealing, or restarting the KMS) recovers: it cuts a torn line and notes it, or
            // continues the chain from a whole line that was written although its write reported a failure.
            _failed = $"the audit log {_path} refuses appends: a failed write could not be cut back ({e.Message}); every request tries the cut again, and restarting the KMS reopens the log";
        }
    }

    private void Recover()
    {
        var length = _file.Length;
        if (length == 0)
        {
            return;
        }

        var (lastLine, lastLineEnd) = ReadLastCompleteLine(length);
        long torn = length - lastLineEnd;
        if (torn > 0)
        {
            _file.SetLength(lastLineEnd);
        }

        _end = _file.Seek(0, SeekOrigin.End);
        var notice = (string?)null;
        if (lastLine is not null && AuditChain.TrySplit(lastLine, out var body, out var hash, out var mac))
        {
            using var doc = JsonDocument.Parse(body + "}");
            _seq = doc.RootElement.GetProperty("seq").GetInt64();
            _prevHash = hash;
            _prevMac = mac;
        }
        else if (lastLine is not null)
        {
            notice = "the last entry of the existing log is not in chain format; a new chain starts here";
        }

        if (torn > 0)
        {
            notice = string.Create(CultureInfo.InvariantCulture, $"removed a torn entry of {torn} bytes left by a crash");
        }

        if (notice is not null)
        {
            Append(new JsonObject { ["type"] = "notice", ["notice"] = notice });
        }
    }

    private (string? Line, long End) ReadLastCompleteLine(long length)
    {
        // Walk back from the end in chunks until the last newline and the one before it are found.
        const int Chunk = 64 * 1024;
        var buffer = new List<byte>();
        long position = length;
        long lastNewline = -1;
        while (position > 0)
        {
            var size = (int)Math.Min(Chunk, position);
            position -= size;
            var chunk = new byte[size];
            _file.Seek(position, SeekOrigin.Begin);
            _file.ReadExactly(chunk);
            buffer.InsertRange(0, chunk);
            var newlines = new List<long>();
            for (var i = buffer.Count - 1; i >= 0; i--)
            {
                if (buffer[i] == (byte)'\n')
                {
                    newlines.Add(position + i);
                    if (newlines.Count == 2)
                    {
                        break;
                    }
                }
            }

            if (newlines.Count == 0)
            {
                continue;
            }

            lastNewline = newlines[0];
            if (newlines.Count == 2 || position == 0)
            {
                var start = newlines.Count == 2 ? newlines[1] + 1 : 0;
                var bytes = buffer.GetRange((int)(start - position), (int)(lastNewline - start)).ToArray();
                return (Encoding.UTF8.GetString(bytes), lastNewline + 1);
            }
        }

        return (null, lastNewline + 1);
    }
}
