using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Audit;

namespace Morphisms.Kms.Tests.Audit;

public sealed class AuditLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-audit-").FullName;
    private readonly AuditKeys _keys = AuditKeys.Derive(RandomNumberGenerator.GetBytes(32));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 22, 12, 0, 0, TimeSpan.Zero));

    private string LogPath => Path.Combine(_dir, "audit.log");

    [Fact]
    public void An_untouched_log_verifies_with_and_without_the_key()
    {
        Write(5);
        var withoutKey = AuditLogVerifier.Verify(LogPath);
        var withKey = AuditLogVerifier.Verify(LogPath, _keys.ChainKey);

        Assert.True(withoutKey.Valid, string.Join("; ", withoutKey.Problems));
        Assert.False(withoutKey.MacsChecked);
        Assert.True(withKey.Valid, string.Join("; ", withKey.Problems));
        Assert.True(withKey.MacsChecked);
        Assert.Equal(5, withKey.Entries);
        Assert.Equal(5, withKey.LastSequence);
        Assert.True(AuditLogVerifier.Verify(LogPath, _keys.ChainKey, withKey.LastHash).Valid);
    }

    [Fact]
    public void An_edited_entry_is_detected()
    {
        Write(4);
        var lines = File.ReadAllLines(LogPath);
        lines[1] = lines[1].Replace("\"n\":1", "\"n\":7", StringComparison.Ordinal);
        File.WriteAllLines(LogPath, lines);

        var result = AuditLogVerifier.Verify(LogPath);
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.StartsWith("line 2 was modified", StringComparison.Ordinal));
    }

    [Fact]
    public void A_removed_or_reordered_entry_is_detected()
    {
        Write(4);
        var lines = File.ReadAllLines(LogPath).ToList();
        File.WriteAllLines(LogPath, lines.Where((_, i) => i != 1));
        var removed = AuditLogVerifier.Verify(LogPath);
        Assert.Contains(removed.Problems, p => p.Contains("has sequence 3, expected 2", StringComparison.Ordinal));
        Assert.Contains(removed.Problems, p => p.Contains("does not chain", StringComparison.Ordinal));

        File.WriteAllLines(LogPath, [lines[0], lines[2], lines[1], lines[3]]);
        Assert.False(AuditLogVerifier.Verify(LogPath).Valid);
    }

    [Fact]
    public void A_rechained_forgery_passes_the_hash_check_but_not_the_mac_check()
    {
        Write(3);

        // An attacker without the key edits line 2 and recomputes every hash after it.
        var lines = File.ReadAllLines(LogPath);
        var prev = AuditChain.Genesis;
        var forged = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            Assert.True(AuditChain.TrySplit(lines[i], out var body, out _, out var mac));
            var json = JsonNode.Parse(body + "}")!.AsObject();
            json["prev"] = prev;
            if (i == 1)
            {
                json["n"] = 99;
            }

            var text = json.ToJsonString();
            var newBody = text[..^1];
            var hash = AuditChain.HashBody(newBody);
            forged.Add(newBody + AuditChain.Suffix(hash, mac));
            prev = hash;
        }

        File.WriteAllLines(LogPath, forged);
        Assert.True(AuditLogVerifier.Verify(LogPath).Valid);
        var withKey = AuditLogVerifier.Verify(LogPath, _keys.ChainKey);
        Assert.False(withKey.Valid);
        Assert.Contains(withKey.Problems, p => p.Contains("invalid MAC", StringComparison.Ordinal));
    }

    [Fact]
    public void A_wrong_key_or_a_truncated_tail_is_reported()
    {
        Write(3);
        var full = AuditLogVerifier.Verify(LogPath);
        Assert.False(AuditLogVerifier.Verify(LogPath, AuditKeys.Derive(new byte[32]).ChainKey).Valid);

        var lines = File.ReadAllLines(LogPath);
        File.WriteAllLines(LogPath, lines[..2]);
        Assert.True(AuditLogVerifier.Verify(LogPath).Valid);
        var truncated = AuditLogVerifier.Verify(LogPath, _keys.ChainKey, full.LastHash);
        Assert.False(truncated.Valid);
        Assert.Contains(truncated.Problems, p => p.Contains("truncated", StringComparison.Ordinal));
    }

    [Fact]
    public void Against_the_head_the_writer_holds_a_cut_tail_or_another_chain_is_reported()
    {
        Write(2);
        var earlier = Head();
        Write(1);
        var head = Head();
        Assert.Equal((2L, 3L), (earlier.Sequence, head.Sequence));
        Assert.True(AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, head).Valid);

        // Entries after the head (appended while the file is read) are fine: only the head must be there.
        Assert.True(AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, earlier).Valid);

        File.WriteAllLines(LogPath, File.ReadAllLines(LogPath)[..2]);
        Assert.True(AuditLogVerifier.Verify(LogPath, _keys.ChainKey).Valid);
        var cut = AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, head);
        Assert.False(cut.Valid);
        Assert.Contains(cut.Problems, p => p.Contains("has no entry 3, the last the KMS wrote (its last is 2)", StringComparison.Ordinal));

        File.Delete(LogPath);
        _time.Advance(TimeSpan.FromSeconds(1));
        Write(3);
        var other = AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, head);
        Assert.Equal(["line 3 is not the entry 3 the KMS wrote (its hash differs): the log was replaced"], other.Problems);
    }

    [Fact]
    public void Reopening_continues_the_chain_and_a_torn_tail_is_cut_and_noted()
    {
        Write(2);
        const string torn = "{\"seq\":3,\"time\":\"2026-";
        File.AppendAllText(LogPath, torn);
        Write(2);

        var text = File.ReadAllText(LogPath);
        Assert.Contains($"removed a torn entry of {torn.Length} bytes", text, StringComparison.Ordinal);
        var result = AuditLogVerifier.Verify(LogPath, _keys.ChainKey);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(5, result.Entries);
    }

    [Fact]
    public void Entries_are_escaped_json_the_serialiser_would_write_and_verify_after_a_large_one()
    {
        var parsed = JsonNode.Parse("""{"nested":{"list":[1,2.5,true,null,"x"]},"unicode":"caf\u00e9 \u2603 <tag> & 'q' +"}""")!.AsObject();
        var fields = new JsonObject
        {
            ["type"] = "request",
            ["odd key \"\u00e9\n"] = "line\nbreak\ttab\u0001 caf\u00e9 <script>",
            ["parsed"] = parsed,
            ["none"] = null,
            ["big"] = new string('a', 300_000),
        };
        using (var log = AuditLog.Open(LogPath, _keys, _time))
        {
            log.Append(fields.DeepClone().AsObject());
            log.Append(new JsonObject { ["type"] = "after" });
        }

        var line = File.ReadAllLines(LogPath)[0];
        Assert.True(AuditChain.TrySplit(line, out var body, out _, out _));

        // What the log wrote before it built lines as UTF-8: the serialiser's escaping of each key and value.
        var expected = new StringBuilder("{\"seq\":1,\"time\":").Append(System.Text.Json.JsonSerializer.Serialize(Morphisms.Kms.Http.Timestamps.Rfc3339(_time.GetUtcNow())));
        foreach (var (key, value) in fields)
        {
            expected.Append(',').Append(System.Text.Json.JsonSerializer.Serialize(key)).Append(':').Append(value?.ToJsonString() ?? "null");
        }

        expected.Append(",\"prev\":\"").Append(AuditChain.Genesis).Append('"');
        Assert.Equal(expected.ToString(), body);
        Assert.True(line.All(char.IsAscii));
        var result = AuditLogVerifier.Verify(LogPath, _keys.ChainKey);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(2, result.Entries);
    }

    [Fact]
    public async Task A_dispose_racing_an_append_waits_for_it_and_later_appends_fail_as_disposed()
    {
        var time = new HoldingTime(_time);
        var log = AuditLog.Open(LogPath, _keys, time);
        log.Append(new JsonObject { ["type"] = "before" });

        // The append stops inside its lock (reading the clock), before it writes; the seal's Dispose arrives then.
        time.HoldNext();
        var append = Task.Run(() => log.Append(new JsonObject { ["type"] = "racing" }));
        Assert.True(time.Reached.Wait(TimeSpan.FromSeconds(30)));
        var dispose = Task.Run(log.Dispose);

        // Dispose cannot finish while the append holds the lock (before, it closed the file under the append at once).
        await Task.WhenAny(dispose, Task.Delay(TimeSpan.FromMilliseconds(200)));
        Assert.False(dispose.IsCompleted);
        time.Release();
        await append.WaitAsync(TimeSpan.FromSeconds(30));
        await dispose.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Throws<ObjectDisposedException>(() => log.Append(new JsonObject { ["type"] = "after" }));
        var result = AuditLogVerifier.Verify(LogPath, _keys.ChainKey);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(2, result.Entries);
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void A_failed_write_leaves_nothing_behind_and_the_next_entry_continues_the_chain(bool buffered, bool partial)
    {
        // A full disk: one write fails (after writing part of the line, or inside a 4 KiB buffer that, like
        // FileStream's own, keeps the failed bytes); the entries before and after it must still verify.
        ThrowOnceStream? failing = null;
        using (var log = AuditLog.Open(LogPath, _keys, _time, (path, options) =>
        {
            failing = new ThrowOnceStream(new FileStream(path, options), partial);
            return buffered ? new BufferedStream(failing, 4096) : failing;
        }))
        {
            log.Append(new JsonObject { ["type"] = "request", ["n"] = 1 });
            failing!.FailNext = true;
            Assert.Throws<IOException>(() => log.Append(new JsonObject { ["type"] = "request", ["n"] = 2 }));
            log.Append(new JsonObject { ["type"] = "request", ["n"] = 3 });
            var head = log.Head;
            Assert.Equal(2, head.Sequence);

            var result = AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, head);
            Assert.True(result.Valid, string.Join("; ", result.Problems));
            Assert.Equal(2, result.Entries);
        }

        Assert.DoesNotContain("\"n\":2", File.ReadAllText(LogPath), StringComparison.Ordinal);
        Assert.True(AuditLogVerifier.Verify(LogPath, _keys.ChainKey).Valid);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_failed_write_that_cannot_be_cut_back_fails_later_appends_until_the_cut_succeeds_or_the_log_is_reopened(bool diskRecovers)
    {
        ThrowOnceStream? failing = null;
        using (var log = AuditLog.Open(LogPath, _keys, _time, (path, options) => failing = new ThrowOnceStream(new FileStream(path, options), partial: true)))
        {
            log.Append(new JsonObject { ["type"] = "request", ["n"] = 1 });
            failing!.FailNext = true;
            failing.FailSetLength = true;
            Assert.Throws<IOException>(() => log.Append(new JsonObject { ["type"] = "request", ["n"] = 2 }));
            var refused = Assert.Throws<IOException>(() => log.Append(new JsonObject { ["type"] = "request", ["n"] = 3 }));
            Assert.Contains("refuses appends", refused.Message, StringComparison.Ordinal);
            if (diskRecovers)
            {
                // The KMS's own sys/seal is audited, so a log that only a reopen could clear would wedge it until a restart.
                failing.FailSetLength = false;
                log.Append(new JsonObject { ["type"] = "request", ["n"] = 4 });
                var recovered = AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, log.Head);
                Assert.True(recovered.Valid, string.Join("; ", recovered.Problems));
                Assert.Equal(2, recovered.Entries);
                Assert.DoesNotContain("\"n\":2", File.ReadAllText(LogPath), StringComparison.Ordinal);
                return;
            }
        }

        // Reopening cuts the torn half line and notes it; the chain verifies.
        Write(1);
        var result = AuditLogVerifier.Verify(LogPath, _keys.ChainKey);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(3, result.Entries);
        Assert.Contains("removed a torn entry", File.ReadAllText(LogPath), StringComparison.Ordinal);
    }

    [Fact]
    public void After_a_copytruncate_the_next_line_starts_the_file_and_it_verifies_from_the_kms_notice()
    {
        using var log = AuditLog.Open(LogPath, _keys, _time);
        for (var i = 0; i < 3; i++)
        {
            log.Append(new JsonObject { ["type"] = "request", ["n"] = i });
        }

        // logrotate's copytruncate: copy, then truncate the file the KMS holds open.
        var rotated = Path.Combine(_dir, "audit.log.1");
        File.Copy(LogPath, rotated);
        using (var file = new FileStream(LogPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            file.SetLength(0);
        }

        log.Append(new JsonObject { ["type"] = "request", ["n"] = 3 });
        log.Append(new JsonObject { ["type"] = "request", ["n"] = 4 });

        var bytes = File.ReadAllBytes(LogPath);
        Assert.NotEqual((byte)0, bytes[0]);
        Assert.DoesNotContain((byte)0, bytes);
        var lines = File.ReadAllLines(LogPath);
        Assert.Equal(3, lines.Length);
        Assert.Contains("truncated under the running KMS", lines[0], StringComparison.Ordinal);

        var result = AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, log.Head);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(4, result.FirstSequence);
        Assert.Equal(6, result.LastSequence);
        var old = AuditLogVerifier.Verify(rotated, _keys.ChainKey);
        Assert.True(old.Valid, string.Join("; ", old.Problems));
        Assert.Equal(1, old.FirstSequence);
        Assert.Equal(3, old.LastSequence);

        // Only the KMS's notice may begin a file: one cut after it, or a notice with a forged MAC, is reported.
        File.WriteAllLines(LogPath, lines[1..]);
        Assert.Contains(AuditLogVerifier.Verify(LogPath, _keys.ChainKey).Problems, p => p.Contains("has sequence 5, expected 1", StringComparison.Ordinal));
        var forged = lines[0][..^3] + (lines[0][^3] == '0' ? '1' : '0') + lines[0][^2..];
        File.WriteAllLines(LogPath, [forged, .. lines[1..]]);
        Assert.Contains(AuditLogVerifier.Verify(LogPath, _keys.ChainKey).Problems, p => p.StartsWith("line 1 has an invalid MAC", StringComparison.Ordinal));
    }

    [Fact]
    public void A_cut_under_the_running_kms_that_leaves_lines_is_reported_where_it_continues()
    {
        using var log = AuditLog.Open(LogPath, _keys, _time);
        for (var i = 0; i < 4; i++)
        {
            log.Append(new JsonObject { ["type"] = "request", ["n"] = i });
        }

        var lines = File.ReadAllLines(LogPath);
        using (var file = new FileStream(LogPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            file.SetLength(lines[..2].Sum(l => Encoding.UTF8.GetByteCount(l) + 1));
        }

        log.Append(new JsonObject { ["type"] = "request", ["n"] = 4 });
        Assert.DoesNotContain((byte)0, File.ReadAllBytes(LogPath));
        var result = AuditLogVerifier.Verify(LogPath, _keys.ChainKey, null, log.Head);
        Assert.False(result.Valid);
        Assert.Contains(result.Problems, p => p.StartsWith("line 3 is where the KMS found the log truncated or replaced", StringComparison.Ordinal));
    }

    [Fact]
    public void Values_are_hashed_with_the_value_key_in_vault_notation()
    {
        var hash = _keys.Hash("s3cr3t");
        Assert.StartsWith("hmac-sha256:", hash, StringComparison.Ordinal);
        Assert.Equal(Convert.ToHexStringLower(HMACSHA256.HashData(_keys.ValueKey, Encoding.UTF8.GetBytes("s3cr3t"))), hash["hmac-sha256:".Length..]);
        Assert.NotEqual(_keys.ValueKey, _keys.ChainKey);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A clock whose next read blocks, once held, until released (the log reads it inside its append lock).</summary>
    private sealed class HoldingTime(TimeProvider inner) : TimeProvider
    {
        private readonly ManualResetEventSlim _release = new();
        private int _hold;

        public ManualResetEventSlim Reached { get; } = new();

        public void HoldNext() => Volatile.Write(ref _hold, 1);

        public void Release() => _release.Set();

        public override DateTimeOffset GetUtcNow()
        {
            if (Interlocked.Exchange(ref _hold, 0) == 1)
            {
                Reached.Set();
                _release.Wait(TimeSpan.FromSeconds(30));
            }

            return inner.GetUtcNow();
        }
    }

    /// <summary>A file stream whose next write, once armed, fails like a full disk (after writing half, if partial).</summary>
    private sealed class ThrowOnceStream(FileStream inner, bool partial) : Stream
    {
        public bool FailNext { get; set; }

        public bool FailSetLength { get; set; }

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => true;

        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set => inner.Position = value;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (FailNext)
            {
                FailNext = false;
                if (partial)
                {
                    inner.Write(buffer[..(buffer.Length / 2)]);
                }

                throw new IOException("No space left on device");
            }

            inner.Write(buffer);
        }

        public override void SetLength(long value)
        {
            if (FailSetLength)
            {
                throw new IOException("Input/output error");
            }

            inner.SetLength(value);
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private (long Sequence, string Hash) Head()
    {
        using var log = AuditLog.Open(LogPath, _keys, _time);
        return log.Head;
    }

    private void Write(int count)
    {
        using var log = AuditLog.Open(LogPath, _keys, _time);
        for (var i = 0; i < count; i++)
        {
            log.Append(new JsonObject { ["type"] = "request", ["n"] = i, ["text"] = "line with \"quotes\" and ,\"hash\":\"" });
        }
    }
}
