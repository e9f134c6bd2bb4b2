using System.Text;
using System.Text.Json.Nodes;
using Morphisms.Agent.Telemetry;

namespace Morphisms.Agent.Tests.Telemetry;

/// <summary>The agent's log lines share a pipe with the app's output: each must reach it in one write.</summary>
public sealed class AgentLogTests
{
    [Fact]
    public void A_long_line_reaches_the_stream_in_one_write()
    {
        var stream = new WriteRecorder();
        using var writer = AgentLog.LineAtomic(stream);
        var log = new AgentLog(writer, TimeProvider.System, "signer");

        // Longer than the 256-byte pieces Console.Error writes in, as the cold_start report is.
        var phases = new JsonObject();
        for (var i = 0; i < 40; i++)
        {
            phases[$"phase_{i}"] = i * 1.5;
        }

        log.Info("cold_start", "ready", new JsonObject { ["phases_ms"] = phases });
        log.Info("exit", "done");

        Assert.Equal(2, stream.Writes.Count);
        var first = Encoding.UTF8.GetString(stream.Writes[0]);
        Assert.True(first.Length > 700, $"the test line is only {first.Length} bytes");
        Assert.EndsWith("\n", first, StringComparison.Ordinal);
        Assert.Equal("cold_start", JsonNode.Parse(first)!["event"]!.GetValue<string>());
    }

    private sealed class WriteRecorder : Stream
    {
        public List<byte[]> Writes { get; } = [];

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Writes.Add(buffer[offset..(offset + count)]);

        public override void Write(ReadOnlySpan<byte> buffer) => Writes.Add(buffer.ToArray());

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
