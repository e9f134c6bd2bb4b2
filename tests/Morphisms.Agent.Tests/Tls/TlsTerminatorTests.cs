using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Morphisms.Agent.Identity;
using Morphisms.Agent.Tls;

namespace Morphisms.Agent.Tests.Tls;

/// <summary>The terminator in front of a stand-in app on loopback.</summary>
public sealed class TlsTerminatorTests
{
    [Fact]
    public async Task OnlyAClientThatCompletesTheHandshake_ReachesTheApp()
    {
        using var app = new TcpListener(IPAddress.Loopback, 0);
        app.Start();
        var appPort = ((IPEndPoint)app.LocalEndpoint).Port;
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        await using var terminator = new TlsTerminator("127.0.0.1", 0, appPort, certificate);
        terminator.Start();
        terminator.ForwardToApp();

        // A client that connects and says nothing: no connection reaches the app.
        using var silent = new TcpClient();
        await silent.ConnectAsync(IPAddress.Loopback, terminator.Port);
        var pending = app.AcceptTcpClientAsync();
        await Task.Delay(300);
        Assert.False(pending.IsCompleted);

        // A client that completes the handshake does, and its bytes arrive in plaintext.
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, terminator.Port);
        await using var tls = new SslStream(client.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "term",
            RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetCertHashString(HashAlgorithmName.SHA256) == certificate.Certificate.GetCertHashString(HashAlgorithmName.SHA256),
        });
        await tls.WriteAsync("hello"u8.ToArray());
        using var accepted = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        var buffer = new byte[5];
        await accepted.GetStream().ReadExactlyAsync(buffer);
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer));
        Assert.Equal(2, terminator.Accepted);
    }

    [Fact]
    public async Task AnAppOnAUnixDomainSocket_GetsTheRequestAndItsAnswerGoesBack()
    {
        // The Gramine path: the app listens on a UNIX domain socket (an encrypted pipe inside the enclave instance),
        // not on loopback TCP, which under Gramine is the host kernel's.
        var dir = Directory.CreateTempSubdirectory("morph-uds-").FullName;
        try
        {
            var path = Path.Combine(dir, "app.sock");
            using var app = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            app.Bind(new UnixDomainSocketEndPoint(path));
            app.Listen();
            var served = Task.Run(async () =>
            {
                using var connection = await app.AcceptAsync();
                await using var stream = new NetworkStream(connection);
                var request = new byte[5];
                await stream.ReadExactlyAsync(request);
                await stream.WriteAsync(Encoding.ASCII.GetBytes("echo:" + Encoding.ASCII.GetString(request)));
                connection.Shutdown(SocketShutdown.Send);
            });

            using var identity = new InstanceIdentity("term");
            var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
            await using var terminator = new TlsTerminator("127.0.0.1", 0, new UnixDomainSocketEndPoint(path), certificate);
            terminator.Start();
            terminator.ForwardToApp();

            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, terminator.Port);
            await using var tls = new SslStream(client.GetStream());
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "term",
                RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetCertHashString(HashAlgorithmName.SHA256) == certificate.Certificate.GetCertHashString(HashAlgorithmName.SHA256),
            });
            await tls.WriteAsync("hello"u8.ToArray());
            var answer = new byte[10];
            await tls.ReadExactlyAsync(answer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal("echo:hello", Encoding.ASCII.GetString(answer));
            await served.WaitAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task BeyondTheConnectionCap_NothingMoreIsAccepted_UntilAConnectionCloses()
    {
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        await using var terminator = new TlsTerminator("127.0.0.1", 0, appPort: 1, certificate, maxConnections: 2);
        terminator.Start();

        // Two clients that say nothing hold both slots for the handshake's 10 s.
        using var first = new TcpClient();
        await first.ConnectAsync(IPAddress.Loopback, terminator.Port);
        using var second = new TcpClient();
        await second.ConnectAsync(IPAddress.Loopback, terminator.Port);
        await Eventually.Until(() => terminator.Accepted == 2, "the first two connections accepted");

        // A third completes its TCP handshake in the kernel's backlog but is not taken up.
        using var third = new TcpClient();
        await third.ConnectAsync(IPAddress.Loopback, terminator.Port);
        await Task.Delay(300);
        Assert.Equal(2, terminator.Accepted);

        // One leaving frees its slot for the one waiting.
        first.Close();
        await Eventually.Until(() => terminator.Accepted == 3, "the waiting connection accepted once a slot was freed");
    }

    [Fact]
    public async Task TheHandshakeTimeout_RunsOnTheInjectedClock()
    {
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var terminator = new TlsTerminator("127.0.0.1", 0, appPort: 1, certificate, time: time);
        terminator.Start();

        using var silent = new TcpClient();
        await silent.ConnectAsync(IPAddress.Loopback, terminator.Port);
        await Eventually.Until(() => terminator.Accepted == 1, "the silent connection accepted");
        var read = silent.GetStream().ReadAsync(new byte[1]).AsTask();

        // The 10 s pass on the fake clock, within a second or two of real time (the real clock would take 10 s).
        for (var i = 0; i < 20 && !read.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromSeconds(10));
            await Task.WhenAny(read, Task.Delay(100));
        }

        Assert.Equal(0, await read.WaitAsync(TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task AConnectionSilentBothWaysForTheIdleTimeout_IsClosed_FreeingItsSlot()
    {
        // Clients that complete the handshake and then say nothing would otherwise hold every slot for good, in front
        // of an app with no idle timeout of its own (this one never closes anything).
        using var app = new TcpListener(IPAddress.Loopback, 0);
        app.Start();
        var appSide = new List<TcpClient>();
        var accepting = Task.Run(async () =>
        {
            while (true)
            {
                var accepted = await app.AcceptTcpClientAsync();
                lock (appSide)
                {
                    appSide.Add(accepted);
                }
            }
        });
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var terminator = new TlsTerminator("127.0.0.1", 0, ((IPEndPoint)app.LocalEndpoint).Port, certificate, maxConnections: 2, time: time);
        terminator.Start();
        terminator.ForwardToApp();

        var (talker, talkerTls) = await HandshakeAsync(terminator.Port, certificate);
        var (silent, silentTls) = await HandshakeAsync(terminator.Port, certificate);
        await Eventually.Until(() => { lock (appSide) { return appSide.Count == 2; } }, "both connections through to the app");
        using var third = new TcpClient();
        await third.ConnectAsync(IPAddress.Loopback, terminator.Port);
        await Task.Delay(300);
        Assert.Equal(2, terminator.Accepted);

        // The talker's first byte, before the clock moves: once it reaches the app, the talker's pump runs and its idle
        // timer counts from now. The silent one's may start later: the terminator arms it once its own connect to the app
        // completes, which a busy thread pool can put off past a clock step, so no fixed step can say when it fires.
        await talkerTls.WriteAsync("x"u8.ToArray());
        await Eventually.Until(() => { lock (appSide) { return appSide.Any(c => c.Available > 0); } }, "the talker's byte reaches the app");
        TcpClient talkerAtApp;
        lock (appSide)
        {
            talkerAtApp = appSide.Single(c => c.Available > 0);
        }

        var fromTalker = talkerAtApp.GetStream();
        var received = new byte[1];
        Assert.Equal(1, await fromTalker.ReadAsync(received).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));

        // A minute at a time, the talker sends a byte that reaches the app, until the silent one is closed: not before
        // five minutes (its timer started no earlier than the talker's), and within an hour on the fake clock, however
        // late its timer started. The talker, open as long, is not closed meanwhile: the timeout counts from the last
        // byte, not from the connection's start.
        var silentEnd = silentTls.ReadAsync(new byte[1]).AsTask();
        var minutes = 0;
        while (!silentEnd.IsCompleted)
        {
            Assert.True(minutes < 60, "the silent connection was closed within an hour of silence on the fake clock");
            time.Advance(TimeSpan.FromMinutes(1));
            minutes++;
            await talkerTls.WriteAsync("x"u8.ToArray());
            Assert.Equal(1, await fromTalker.ReadAsync(received).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
            await Task.WhenAny(silentEnd, Task.Delay(200));
        }

        Assert.True(minutes >= 5, $"the silent connection was closed after {minutes} minutes, before its five idle minutes");
        Assert.True(silentEnd.IsFaulted || await silentEnd == 0, "the silent connection's close was an end of stream or a reset, not data");
        await Eventually.Until(() => terminator.Accepted == 3, "the waiting connection accepted in the freed slot");
        await talkerTls.WriteAsync("y"u8.ToArray());
        Assert.Equal(1, await fromTalker.ReadAsync(received).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal((byte)'y', received[0]);

        // Five silent minutes later, the talker goes too. The byte reaching the app does not mean its pump has also
        // marked the write done (its second Touch): should that land while Advance fires the timer, the silence starts
        // five minutes later, so the clock moves on in five-minute steps until the read sees the close.
        var end = talkerTls.ReadAsync(new byte[1]).AsTask();
        for (var step = 0; step < 3 && !end.IsCompleted; step++)
        {
            time.Advance(TimeSpan.FromMinutes(5));
            await Task.WhenAny(end, Task.Delay(TimeSpan.FromSeconds(3)));
        }

        Assert.True(end.IsCompleted, "the talker, once silent, was closed");
        Assert.True(end.IsFaulted || await end == 0, "the talker's close was an end of stream or a reset, not data");
        await talkerTls.DisposeAsync();
        await silentTls.DisposeAsync();
        talker.Dispose();
        silent.Dispose();
        app.Stop();
        await Assert.ThrowsAnyAsync<Exception>(() => accepting);
        lock (appSide)
        {
            appSide.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task AClientThatHalfClosesAfterItsRequest_ReadsALongResponseToItsEnd()
    {
        // The client sends its request and close_notify, then reads a response that streams for a minute (on the fake
        // clock): the request direction has ended, but the response is moving, so only the idle timeout may end it.
        using var app = new TcpListener(IPAddress.Loopback, 0);
        app.Start();
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var terminator = new TlsTerminator("127.0.0.1", 0, ((IPEndPoint)app.LocalEndpoint).Port, certificate, time: time);
        terminator.Start();
        terminator.ForwardToApp();

        var (client, tls) = await HandshakeAsync(terminator.Port, certificate);
        using var _ = client;
        await using var __ = tls;
        await tls.WriteAsync("request"u8.ToArray());
        await tls.ShutdownAsync();
        using var appSide = await app.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(10));
        var appStream = appSide.GetStream();
        using var request = new MemoryStream();
        await appStream.CopyToAsync(request).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("request", Encoding.ASCII.GetString(request.ToArray()));

        // A chunk every 10 s for a minute, each read by the client before the clock moves on.
        var chunk = new byte[1];
        for (var i = 0; i < 6; i++)
        {
            await appStream.WriteAsync(new[] { (byte)('0' + i) });
            Assert.Equal(1, await tls.ReadAsync(chunk).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal((byte)('0' + i), chunk[0]);
            time.Advance(TimeSpan.FromSeconds(10));
            await Task.Delay(50);
        }

        // The app ends its response; the client reads the end of it.
        appSide.Client.Shutdown(SocketShutdown.Send);
        Assert.True(await ClosedAsync(tls), "the response ends when the app ends it");
    }

    [Fact]
    public async Task AClientThatResets_EndsItsConnectionAtOnce_FreeingItsSlot()
    {
        // A direction that fails leaves nothing for the other to carry: the connection ends, and its slot comes free,
        // without waiting for any timeout (the fake clock never moves) though the app says nothing.
        using var app = new TcpListener(IPAddress.Loopback, 0);
        app.Start();
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var terminator = new TlsTerminator("127.0.0.1", 0, ((IPEndPoint)app.LocalEndpoint).Port, certificate, maxConnections: 1, time: time);
        terminator.Start();
        terminator.ForwardToApp();

        var (client, tls) = await HandshakeAsync(terminator.Port, certificate);
        await tls.WriteAsync("x"u8.ToArray());
        using var appSide = await app.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, await appSide.GetStream().ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));

        using var waiting = new TcpClient();
        await waiting.ConnectAsync(IPAddress.Loopback, terminator.Port);
        client.Client.Close(0);
        await Eventually.Until(() => terminator.Accepted == 2, "the reset connection's slot freed for the one waiting", TimeSpan.FromSeconds(5));
        await tls.DisposeAsync();
    }

    private static async Task<(TcpClient Client, SslStream Tls)> HandshakeAsync(int port, ServingCertificate certificate)
    {
        var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        var tls = new SslStream(client.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "term",
            RemoteCertificateValidationCallback = (_, presented, _, _) => presented is not null && presented.GetCertHashString(HashAlgorithmName.SHA256) == certificate.Certificate.GetCertHashString(HashAlgorithmName.SHA256),
        });
        return (client, tls);
    }

    // The terminator closed it: end of stream, or a reset.
    private static async Task<bool> ClosedAsync(SslStream tls)
    {
        try
        {
            return await tls.ReadAsync(new byte[1]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)) == 0;
        }
        catch (IOException)
        {
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    [Fact]
    public async Task ASlotFreedWhileDraining_DoesNotAcceptOnTheStoppedListener()
    {
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        var terminator = new TlsTerminator("127.0.0.1", 0, appPort: 1, certificate, maxConnections: 2);
        terminator.Start();
        using var first = new TcpClient();
        await first.ConnectAsync(IPAddress.Loopback, terminator.Port);
        using var second = new TcpClient();
        await second.ConnectAsync(IPAddress.Loopback, terminator.Port);
        await Eventually.Until(() => terminator.Accepted == 2, "both slots taken");

        // The second client keeps the drain waiting while the first one's slot comes free.
        var stopping = terminator.StopAsync(TimeSpan.FromSeconds(1));
        first.Close();
        await stopping;
        await terminator.DisposeAsync();
        Assert.Equal(2, terminator.Accepted);
    }

    [Fact]
    public async Task AHandshakeBeforeTheAppIsConfirmed_IsHeld_AndForwardedOnlyOnceItIs()
    {
        // Whatever listens on the app's port before the agent has checked who it is may be a squatter: a client that
        // completes its handshake meanwhile gets no connection to it until ForwardToApp, and then its bytes go through.
        using var app = new TcpListener(IPAddress.Loopback, 0);
        app.Start();
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        await using var terminator = new TlsTerminator("127.0.0.1", 0, ((IPEndPoint)app.LocalEndpoint).Port, certificate);
        terminator.Start();

        var (client, tls) = await HandshakeAsync(terminator.Port, certificate);
        using var _ = client;
        await using var __ = tls;
        await tls.WriteAsync("early"u8.ToArray());
        var pending = app.AcceptTcpClientAsync();
        await Task.Delay(300);
        Assert.False(pending.IsCompleted, "a connection reached the app's port before the app was confirmed");

        terminator.ForwardToApp();
        using var accepted = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        var buffer = new byte[5];
        await accepted.GetStream().ReadExactlyAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("early", Encoding.ASCII.GetString(buffer));
    }

    [Fact]
    public async Task AHandshakeHeldWhenTheTerminatorStops_IsClosed_AndNothingReachesTheAppsPort()
    {
        // The app's check failed (a squatter on its port): the agent stops the terminator without ForwardToApp, and the
        // held client's request never reaches whoever listens there.
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        using var identity = new InstanceIdentity("term");
        var certificate = identity.Certificate(new Morphisms.Agent.Kms.LoginResult("t", TimeSpan.FromMinutes(1), true, "", [], null, null), TimeProvider.System);
        var terminator = new TlsTerminator("127.0.0.1", 0, ((IPEndPoint)squatter.LocalEndpoint).Port, certificate);
        terminator.Start();

        var (client, tls) = await HandshakeAsync(terminator.Port, certificate);
        using var _ = client;
        await using var __ = tls;
        await tls.WriteAsync("GET /private HTTP/1.1\r\n\r\n"u8.ToArray());
        await Task.Delay(200);

        await terminator.DisposeAsync();
        Assert.True(await ClosedAsync(tls), "the held connection is closed when the terminator stops");
        var pending = squatter.AcceptTcpClientAsync();
        await Task.Delay(300);
        Assert.False(pending.IsCompleted, "the held connection was forwarded to the unconfirmed app port");
    }
}
