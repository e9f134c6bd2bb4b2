using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Invoke;

/// <summary>
/// Says why a call through the gateway failed, from the exception's causes rather than its outermost message (.NET's
/// "The SSL connection could not be established, see inner exception" names no cause, and "Connection refused
/// (NAME.DOMAIN:443)" names a host and port that were never dialled: the connection goes to the gateway).
/// </summary>
/// <remarks>
/// The confidential gateway reads only the ClientHello's server name. For a host with no route it answers the TLS alert
/// <c>unrecognized_name</c> (112); when no instance of a routed function is ready within its wait, or it is full, it
/// closes the connection before any TLS answer. A refusal of the certificate comes only after the instance presented
/// one, so it is recognised first and never reported as one of those: a verification failure is never softened into
/// "not deployed". A server that answers the ClientHello with plain HTTP (the development HTTP-mode gateway, whose
/// <c>tee: none</c> functions nothing attests) is named as such (<see cref="AnswersPlainHttpAsync"/>): <c>morph invoke</c>
/// calls only attested functions, so it says the call would not be attested rather than retrying in clear.
/// </remarks>
internal static class InvokeFailure
{
    /// <summary>
    /// The message for <paramref name="failure"/>, a failed call of <paramref name="request"/>. <paramref name="deployed"/>
    /// is what the serving host's control API lists (<c>GET /v1/functions</c>), asked only after the failure and only of the
    /// host whose gateway was dialled, or null when it could not be asked. <paramref name="plainHttp"/> says that the
    /// gateway answered the TLS handshake with plain HTTP (<see cref="AnswersPlainHttpAsync"/>, asked only when
    /// <see cref="IsHandshakeFailure"/>).
    /// </summary>
    public static string Describe(Exception failure, InvokeRequest request, JsonArray? deployed, TimeSpan timeout, bool plainHttp = false)
    {
        // The host dialled, a tag's included: the one the gateway had no route for.
        var host = request.Host;
        var gateway = request.Gateway.ToString();
        var causes = Causes(failure).ToList();
        var cause = Innermost(causes);

        if (failure is TaskCanceledException)
        {
            return $"{host} did not answer within {timeout.TotalMinutes:0} minutes through the gateway at {gateway}: see `morph logs {request.Function}`";
        }

        if (causes.OfType<HttpRequestException>().FirstOrDefault()?.HttpRequestError == HttpRequestError.ConnectionError)
        {
            var reason = causes.OfType<SocketException>().FirstOrDefault()?.Message ?? cause;
            return $"cannot reach the gateway at {gateway}: {reason}; nothing was sent (is `morph up` running, and is {gateway} its gateway? --gateway names another)";
        }

        if (causes.OfType<AuthenticationException>().Any() && causes.Any(e => e.Message.Contains("certificate", StringComparison.OrdinalIgnoreCase)))
        {
            // The instance presented a certificate and it was not accepted: whatever the control API says, that is the answer.
            return $"{host}: certificate REFUSED, nothing was sent: {cause}";
        }

        if (causes.Any(e => e.Message.Contains("unrecognized name", StringComparison.OrdinalIgnoreCase)))
        {
            // The gateway's unrecognized_name alert: its route table has no entry for the host.
            return NotRouted(request, host, gateway, deployed);
        }

        if (causes.OfType<HttpRequestException>().FirstOrDefault()?.HttpRequestError == HttpRequestError.SecureConnectionError
            && !causes.OfType<AuthenticationException>().Any() && causes.OfType<IOException>().Any())
        {
            // Closed (or reset) before any TLS answer: the gateway's way of saying no instance came in time.
            return Listed(deployed, request, host) is false
                ? NotRouted(request, host, gateway, deployed)
                : $"no instance of {request.Function} was ready in time: the gateway at {gateway} closed the connection before one answered "
                    + $"(an instance that keeps crashing never becomes ready; the gateway waits 30 s by default): see `morph logs {request.Function}`"
                    + (deployed is null ? $", and `morph ls` for whether {request.Function} is deployed" : string.Empty);
        }

        if (causes.OfType<AuthenticationException>().Any())
        {
            return plainHttp
                ? $"the gateway at {gateway} answered plain HTTP, not TLS: it is not a confidential gateway but, say, the development HTTP-mode one, whose "
                    + $"functions (tee: none) are NOT attested; morph invoke calls only attested functions, whose TLS ends in the instance, so nothing was sent. "
                    + $"To call an unattested function anyway, knowing nothing verifies what answers, use a plain HTTP client: curl -H 'Host: {host}' http://{gateway}{request.Path}"
                : $"the TLS handshake with {host} through the gateway at {gateway} failed: {cause}; nothing was sent";
        }

        return cause == failure.Message.TrimEnd('.') ? $"{request.Function}: {cause}" : $"{request.Function}: {failure.Message.TrimEnd('.')}: {cause}";
    }

    /// <summary>
    /// Whether <paramref name="failure"/> is a TLS handshake that failed for another reason than a refused certificate or
    /// a host with no route: the case in which <see cref="AnswersPlainHttpAsync"/> is worth asking.
    /// </summary>
    public static bool IsHandshakeFailure(Exception failure)
    {
        var causes = Causes(failure).ToList();
        return causes.OfType<AuthenticationException>().Any()
            && !causes.Any(e => e.Message.Contains("certificate", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("unrecognized name", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// Whether the server at <paramref name="gateway"/> answers a TLS ClientHello for <paramref name="host"/> with plain
    /// HTTP, as Kestrel without TLS (the HTTP-mode gateway) does with a 400. Asked only after a failed handshake: the probe
    /// sends that ClientHello again, nothing of the request, and reads the answer's first bytes.
    /// </summary>
    public static async Task<bool> AnswersPlainHttpAsync(IPEndPoint gateway, string host, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        using var socket = new Socket(gateway.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        FirstBytes? answer = null;
        try
        {
            await socket.ConnectAsync(gateway, timeout.Token).ConfigureAwait(false);
            answer = new FirstBytes(new NetworkStream(socket, ownsSocket: false));
            await using var tls = new SslStream(answer, leaveInnerStreamOpen: true);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = host,
                // Nothing is sent after the handshake, whatever the certificate: only the answer's first bytes count.
                RemoteCertificateValidationCallback = (_, _, _, _) => false,
            }, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or SocketException or OperationCanceledException)
        {
        }

        using (answer)
        {
            return answer?.StartsWith("HTTP/"u8) == true;
        }
    }

    /// <summary>The message when the gateway has no route for <paramref name="host"/>, sharpened by the control API's list when there is one.</summary>
    private static string NotRouted(InvokeRequest request, string host, string gateway, JsonArray? deployed)
    {
        if (Listed(deployed, request, host) is true)
        {
            // Listed, yet not routed: deployed or removed a moment ago, or --domain names a host the list does not.
            return $"the gateway at {gateway} has no route for {host}, although the serving host lists {request.Function}: retry, or see `morph ls`";
        }

        if (request.Tag is { } tag)
        {
            // The function may well be deployed: it is the tag's host that has no route.
            return $"no revision of {request.Function} is tagged {tag} (see `morph ls`, and `morph traffic --tag`): the gateway at {gateway} has no route for {host}";
        }

        var elsewhere = deployed?.FirstOrDefault(f => f?["name"]?.ToString() == request.Function)?["host"]?.ToString();
        return elsewhere is not null
            ? $"{request.Function} is served at {elsewhere}, not {host}"
                + (elsewhere.StartsWith(request.Function + ".", StringComparison.OrdinalIgnoreCase) ? $": pass --domain {elsewhere[(request.Function.Length + 1)..]}" : string.Empty)
            : $"no function {request.Function} is deployed (see `morph ls`): the gateway at {gateway} has no route for {host}";
    }

    /// <summary>Whether the control API's list serves <paramref name="host"/> (as a function's host or a tag's), or null without a list.</summary>
    private static bool? Listed(JsonArray? deployed, InvokeRequest request, string host)
    {
        if (deployed is null)
        {
            return null;
        }

        return deployed.Any(f =>
            string.Equals(f?["host"]?.ToString(), host, StringComparison.OrdinalIgnoreCase)
            || (f?["traffic"] as JsonArray ?? []).Any(t => string.Equals(t?["tag_host"]?.ToString(), host, StringComparison.OrdinalIgnoreCase)));
    }

    /// <summary>A stream that keeps the first bytes read through it, to see what a server answered a ClientHello with.</summary>
    private sealed class FirstBytes(Stream inner) : Stream
    {
        private readonly byte[] _first = new byte[8];
        private int _kept;

        public bool StartsWith(ReadOnlySpan<byte> prefix) => _kept >= prefix.Length && _first.AsSpan(0, prefix.Length).SequenceEqual(prefix);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Keep(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            return Keep(buffer.Span[..read]);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        private int Keep(ReadOnlySpan<byte> read)
        {
            var copy = Math.Min(read.Length, _first.Length - _kept);
            read[..copy].CopyTo(_first.AsSpan(_kept));
            _kept += copy;
            return read.Length;
        }
    }

    private static IEnumerable<Exception> Causes(Exception failure)
    {
        for (var e = failure; e is not null; e = e.InnerException)
        {
            yield return e;
        }
    }

    /// <summary>The deepest message that says something (not .NET's "see inner exception").</summary>
    private static string Innermost(List<Exception> causes) =>
        (causes.Select(e => e.Message).LastOrDefault(m => !m.Contains("see inner exception", StringComparison.OrdinalIgnoreCase)) ?? causes[^1].Message).TrimEnd('.');
}
