using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Morphisms.Bench.Load;

/// <summary>What one load trial does per request.</summary>
internal enum GatewayRequest
{
    /// <summary><c>POST /sign</c> with a 17-byte message: the agent's TLS, the app's HTTP and an Ed25519 signature.</summary>
    Sign,

    /// <summary><c>GET /healthz</c>: the same TLS and HTTP path with nearly no app work, so proxy cost weighs more.</summary>
    Healthz,
}

/// <summary>
/// The warm-gateway scenario's load generator, run as its own process (<c>Morphisms.Bench.Load gateway-client …</c>) so
/// that it does not share a thread pool with the gateway it measures (the gateway lives in the bench process, as in
/// <c>morph up</c>). Closed loop: <c>concurrency</c> connections, each sending its next request when the previous
/// response is complete. HTTP/1.1 over TLS written and parsed by hand (pre-encoded request, Content-Length or chunked
/// response), so the per-request client cost is one TLS record each way and no HttpClient machinery.
/// The certificate is pinned to the SHA-256 the parent checked once through attestation: every path must reach the
/// same attested instance, and a pin compare costs nothing next to chain building.
/// </summary>
internal static class GatewayLoadClient
{
    public const string Command = "gateway-client";

    public static async Task<int> RunAsync(string[] args)
    {
        var options = Options.Parse(args.Skip(1));
        var connect = IPEndPoint.Parse(options.Get("connect") ?? throw new ArgumentException("--connect ADDRESS:PORT is required"));
        var sni = options.Get("sni") ?? throw new ArgumentException("--sni NAME is required");
        var pin = Convert.FromHexString(options.Get("pin") ?? throw new ArgumentException("--pin SHA256HEX is required"));
        var output = options.Get("out") ?? throw new ArgumentException("--out FILE is required");
        var concurrency = options.Int("concurrency", 1);
        var newConnection = (options.Get("mode") ?? "keepalive") switch
        {
            "keepalive" => false,
            "close" => true,
            var m => throw new ArgumentException($"--mode {m}: expected keepalive or close"),
        };
        var request = Enum.Parse<GatewayRequest>(options.Get("request") ?? "sign", ignoreCase: true);
        var warmup = TimeSpan.FromSeconds(double.Parse(options.Get("warmup") ?? "1", CultureInfo.InvariantCulture));
        var duration = TimeSpan.FromSeconds(double.Parse(options.Get("seconds") ?? "5", CultureInfo.InvariantCulture));

        var bytes = RequestBytes(request, sni, newConnection);
        var start = Stopwatch.GetTimestamp();
        var measureFrom = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var measureTo = measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, concurrency)
            .Select(_ => new Worker(connect, sni, pin, bytes, newConnection, measureFrom, measureTo))
            .ToArray();
        await Task.WhenAll(workers.Select(w => Task.Run(w.RunAsync)));

        // Latencies as little-endian float32 microseconds: a few hundred KB per trial, pooled across rounds by the parent.
        var latencies = workers.SelectMany(w => w.Latencies).ToArray();
        var raw = new byte[latencies.Length * 4];
        for (var i = 0; i < latencies.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), latencies[i]);
        }

        await File.WriteAllBytesAsync(output, raw);
        var summary = new JsonObject
        {
            ["requests"] = latencies.Length,
            ["seconds"] = duration.TotalSeconds,
            ["total_requests"] = workers.Sum(w => w.Completed),
            ["cpu_ms"] = Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds,
            ["errors"] = workers.Sum(w => w.Errors),
            ["connections"] = workers.Sum(w => w.Connections),
            ["first_error"] = workers.Select(w => w.FirstError).FirstOrDefault(e => e is not null),
        };
        Console.WriteLine(summary.ToJsonString());
        return 0;
    }

    private static byte[] RequestBytes(GatewayRequest request, string host, bool close)
    {
        var connection = close ? "Connection: close\r\n" : "";
        var text = request == GatewayRequest.Sign
            ? $"POST /sign HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\nContent-Length: 17\r\n{connection}\r\nbenchmark message"
            : $"GET /healthz HTTP/1.1\r\nHost: {host}\r\n{connection}\r\n";
        return Encoding.ASCII.GetBytes(text);
    }

    private sealed class Worker(IPEndPoint connect, string sni, byte[] pin, byte[] request, bool newConnection, long measureFrom, long measureTo)
    {
        private readonly byte[] _buffer = new byte[16 * 1024];

        public List<float> Latencies { get; } = new(64 * 1024);

        public int Errors { get; private set; }

        /// <summary>Responses completed, warm-up included (the parent divides the proxy's CPU time by it).</summary>
        public long Completed { get; private set; }

        public int Connections { get; private set; }

        public string? FirstError { get; private set; }

        public async Task RunAsync()
        {
            Socket? socket = null;
            SslStream? tls = null;
            try
            {
                while (Stopwatch.GetTimestamp() < measureTo)
                {
                    // In close mode the clock starts before connect: TCP + TLS setup through the path is what is measured.
                    var started = Stopwatch.GetTimestamp();
                    try
                    {
                        if (tls is null)
                        {
                            (socket, tls) = await ConnectAsync();
                        }

                        await tls.WriteAsync(request);
                        var keepAlive = await ReadResponseAsync(tls);
                        var done = Stopwatch.GetTimestamp();
                        Completed++;
                        if (started >= measureFrom && done <= measureTo)
                        {
                            Latencies.Add((float)((done - started) * 1_000_000.0 / Stopwatch.Frequency));
                        }

                        if (newConnection || !keepAlive)
                        {
                            await CloseAsync(socket, tls);
                            (socket, tls) = (null, null);
                        }
                    }
                    catch (Exception e) when (e is IOException or SocketException or System.Security.Authentication.AuthenticationException or InvalidDataException)
                    {
                        if (Stopwatch.GetTimestamp() < measureTo)
                        {
                            Errors++;
                            FirstError ??= e.GetBaseException().Message;
                        }

                        await CloseAsync(socket, tls);
                        (socket, tls) = (null, null);
                    }
                }
            }
            finally
            {
                await CloseAsync(socket, tls);
            }
        }

        private async Task<(Socket, SslStream)> ConnectAsync()
        {
            var socket = new Socket(connect.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(connect);
                var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = sni,
                    RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                        certificate is not null && SHA256.HashData(certificate.GetRawCertData()).AsSpan().SequenceEqual(pin),
                });
                Connections++;
                return (socket, tls);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        private static async Task CloseAsync(Socket? socket, SslStream? tls)
        {
            if (tls is not null)
            {
                await tls.DisposeAsync();
            }

            socket?.Dispose();
        }

        /// <summary>Reads one response; returns false when the server asked to close the connection.</summary>
        private async Task<bool> ReadResponseAsync(SslStream tls)
        {
            var length = 0;
            int headerEnd;
            while ((headerEnd = _buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8)) < 0)
            {
                length += await ReadSomeAsync(tls, length);
            }

            var headers = Encoding.ASCII.GetString(_buffer, 0, headerEnd);
            if (!headers.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
            {
                throw new InvalidDataException($"unexpected response: {headers.Split("\r\n")[0]}");
            }

            var keepAlive = !headers.Contains("\r\nConnection: close", StringComparison.OrdinalIgnoreCase);
            var bodyStart = headerEnd + 4;
            if (Header(headers, "Content-Length") is { } contentLength)
            {
                var end = bodyStart + int.Parse(contentLength, CultureInfo.InvariantCulture);
                while (length < end)
                {
                    length += await ReadSomeAsync(tls, length);
                }

                return keepAlive;
            }

            // Chunked (ASP.NET Core's JSON results): small bodies, so the whole response fits the buffer; the last
            // chunk is "0\r\n\r\n".
            while (!_buffer.AsSpan(bodyStart, length - bodyStart).EndsWith("0\r\n\r\n"u8))
            {
                length += await ReadSomeAsync(tls, length);
            }

            return keepAlive;
        }

        private async ValueTask<int> ReadSomeAsync(SslStream tls, int offset)
        {
            if (offset == _buffer.Length)
            {
                throw new InvalidDataException("response larger than the client's buffer");
            }

            var read = await tls.ReadAsync(_buffer.AsMemory(offset));
            return read > 0 ? read : throw new IOException("connection closed mid-response");
        }

        private static string? Header(string headers, string name)
        {
            foreach (var line in headers.Split("\r\n"))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon > 0 && line.AsSpan(0, colon).Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    return line[(colon + 1)..].Trim();
                }
            }

            return null;
        }
    }
}
