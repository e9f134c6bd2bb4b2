using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Morphisms.Cli.Tests;

/// <summary>
/// An HTTP server (on loopback unless told otherwise; HTTPS when given a certificate) that answers every request with what <see cref="Respond"/> returns and records what
/// it received: stands in for a KMS or serving host that misbehaves (bad JSON, redirects) in ways the real ones never do.
/// One request per connection.
/// </summary>
public sealed class FakeHttpServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly X509Certificate2? _certificate;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public FakeHttpServer(Func<Request, Response> respond, IPAddress? listen = null, X509Certificate2? certificate = null)
    {
        Respond = respond;
        _certificate = certificate;
        _listener = new TcpListener(listen ?? IPAddress.Loopback, 0);
        _listener.Start();
        _loop = Task.Run(AcceptAsync);
    }

    public sealed record Request(string Method, string Target, IReadOnlyDictionary<string, string> Headers, string Body);

    public sealed record Response(int Status, string Body, IReadOnlyDictionary<string, string>? Headers = null);

    public Func<Request, Response> Respond { get; }

    /// <summary>Every request received, in order.</summary>
    public ConcurrentQueue<Request> Requests { get; } = new();

    public Uri Address => new($"{(_certificate is null ? "http" : "https")}://{((IPEndPoint)_listener.LocalEndpoint).Address}:{((IPEndPoint)_listener.LocalEndpoint).Port}/");

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task<string> ReadExactlyAsync(StreamReader reader, int length)
    {
        var body = new char[length];
        var read = 0;
        while (read < body.Length)
        {
            var got = await reader.ReadAsync(body.AsMemory(read), _stop.Token);
            if (got == 0)
            {
                throw new IOException("the client closed the connection within the body");
            }

            read += got;
        }

        return new string(body);
    }

    // JsonContent (what the serving commands send) has no length up front, so HttpClient sends it in chunks.
    private async Task<string> ReadChunkedAsync(StreamReader reader)
    {
        var body = new StringBuilder();
        while (await reader.ReadLineAsync(_stop.Token) is { } sizeLine)
        {
            var size = int.Parse(sizeLine.Split(';')[0].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
            if (size == 0)
            {
                while (await reader.ReadLineAsync(_stop.Token) is { Length: > 0 })
                {
                    // trailers
                }

                break;
            }

            body.Append(await ReadExactlyAsync(reader, size));
            await reader.ReadLineAsync(_stop.Token); // the CRLF after the chunk
        }

        return body.ToString();
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                Stream stream = client.GetStream();
                if (_certificate is not null)
                {
                    var ssl = new SslStream(stream);
                    await ssl.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = _certificate }, _stop.Token);
                    stream = ssl;
                }

                var reader = new StreamReader(stream, Encoding.ASCII);
                if (await reader.ReadLineAsync(_stop.Token) is not { } first)
                {
                    return;
                }

                var requestLine = first.Split(' ');
                var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                while (await reader.ReadLineAsync(_stop.Token) is { Length: > 0 } line)
                {
                    var colon = line.IndexOf(':');
                    headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
                }

                var body = headers.TryGetValue("Transfer-Encoding", out var encoding) && encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase)
                    ? await ReadChunkedAsync(reader)
                    : await ReadExactlyAsync(reader, headers.TryGetValue("Content-Length", out var length) ? int.Parse(length, System.Globalization.CultureInfo.InvariantCulture) : 0);
                var request = new Request(requestLine[0], requestLine[1], headers, body);
                Requests.Enqueue(request);
                var response = Respond(request);
                var payload = Encoding.UTF8.GetBytes(response.Body);
                var head = new StringBuilder($"HTTP/1.1 {response.Status} Fake\r\nContent-Length: {payload.Length}\r\nConnection: close\r\n");
                foreach (var (name, value) in response.Headers ?? new Dictionary<string, string>())
                {
                    head.Append($"{name}: {value}\r\n");
                }

                await stream.WriteAsync(Encoding.ASCII.GetBytes(head.Append("\r\n").ToString()), _stop.Token);
                await stream.WriteAsync(payload, _stop.Token);
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or System.Security.Authentication.AuthenticationException)
            {
                // The client went away (or refused the certificate), or the server is stopping.
            }
        }
    }
}
