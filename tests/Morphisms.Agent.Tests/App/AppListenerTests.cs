using System.Net;
using System.Net.Sockets;
using Morphisms.Agent.App;

namespace Morphisms.Agent.Tests.App;

/// <summary>
/// Reading who listens on the app's port from a stand-in <c>/proc</c>: the listeners that would take 127.0.0.1:PORT
/// (127.0.0.1, 0.0.0.0, :: and ::ffff:127.0.0.1) must all be open in the app or a descendant; others do not count.
/// </summary>
public sealed class AppListenerTests : IDisposable
{
    private const int App = 100;
    private const int Port = 0x9C40; // 40000
    private const string Header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
    private readonly string _proc = Directory.CreateTempSubdirectory("morph-proc-").FullName;

    [Fact]
    public void The_apps_own_listener_on_loopback_is_owned()
    {
        Tcp(Listening("0100007F", Port, 501), Listening("0100007F", 8080, 999));
        Process(App, parent: 1, sockets: [777, 501]);

        Assert.Equal(AppListener.Verdict.Owned, AppListener.Owner(AppListener.TableListeners(_proc, Port), App, _proc, out var foreign));
        Assert.Empty(foreign);
    }

    [Fact]
    public void A_wildcard_listener_of_another_process_is_foreign_even_beside_the_apps_own()
    {
        Tcp(Listening("0100007F", Port, 501));
        Tcp6(Listening("00000000000000000000000000000000", Port, 602));
        Process(App, parent: 1, sockets: [501]);
        Process(300, parent: 1, sockets: [602]);

        Assert.Equal(AppListener.Verdict.Foreign, AppListener.Owner(AppListener.TableListeners(_proc, Port), App, _proc, out var foreign));
        Assert.Equal([602UL], foreign);
    }

    [Theory]
    [InlineData("00000000", false)] // 0.0.0.0
    [InlineData("0200007F", true)] // 127.0.0.2 takes no connection to 127.0.0.1
    public void An_IPv4_listener_counts_only_where_it_would_take_127_0_0_1(string address, bool ignored)
    {
        Tcp(Listening(address, Port, 701));
        Process(App, parent: 1, sockets: []);

        Assert.Equal(ignored ? AppListener.Verdict.NotListening : AppListener.Verdict.Foreign, AppListener.Owner(AppListener.TableListeners(_proc, Port), App, _proc, out _));
    }

    [Fact]
    public void An_IPv4_mapped_loopback_listener_in_tcp6_counts()
    {
        Tcp();
        Tcp6(Listening("0000000000000000FFFF00000100007F", Port, 801));
        Process(App, parent: 1, sockets: []);

        Assert.Equal(AppListener.Verdict.Foreign, AppListener.Owner(AppListener.TableListeners(_proc, Port), App, _proc, out var foreign));
        Assert.Equal([801UL], foreign);
    }

    [Fact]
    public void A_listener_held_by_a_grandchild_of_the_app_is_owned()
    {
        Tcp(Listening("0100007F", Port, 901));
        Process(App, parent: 1, sockets: []);
        Process(App + 1, parent: App, sockets: []);
        Process(App + 2, parent: App + 1, sockets: [901]);

        Assert.Equal(AppListener.Verdict.Owned, AppListener.Owner(AppListener.TableListeners(_proc, Port), App, _proc, out _));
    }

    [Fact]
    public void Nothing_listening_on_the_port_asks_for_another_probe()
    {
        Tcp(Listening("0100007F", Port + 1, 1001));
        Process(App, parent: 1, sockets: [1001]);

        Assert.Equal(AppListener.Verdict.NotListening, AppListener.Owner(AppListener.TableListeners(_proc, Port), App, _proc, out _));
    }

    /// <summary>The kernel's own answer (sock_diag, or the tables without it) for a real listener of this process and of another.</summary>
    [Fact]
    public async Task A_real_listener_is_this_processs_own_and_not_a_childs()
    {
        using var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;

        var diag = AppListener.DiagListeners(port);
        Assert.NotNull(diag);
        Assert.Equal(AppListener.TableListeners("/proc", port), diag);
        Assert.Single(diag);
        Assert.Equal(AppListener.Verdict.Owned, AppListener.Check(port, Environment.ProcessId, out _));

        using var sleeper = System.Diagnostics.Process.Start("sleep", "30");
        try
        {
            Assert.Equal(AppListener.Verdict.Foreign, AppListener.Check(port, sleeper.Id, out var foreign));
            Assert.Equal(diag.Order(), foreign);
        }
        finally
        {
            sleeper.Kill();
            await sleeper.WaitForExitAsync();
        }

        listener.Stop();
        Assert.Equal(AppListener.Verdict.NotListening, AppListener.Check(port, Environment.ProcessId, out _));
    }

    /// <summary>
    /// A listener of this process's own with SO_REUSEPORT is shared (its flag read off a pidfd_getfd duplicate), and the
    /// trial bind used where that call is refused agrees: another socket could join it, and none could join one without.
    /// </summary>
    [Fact]
    public void A_real_listener_with_SO_REUSEPORT_is_shared()
    {
        using var shared = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        shared.SetRawSocketOption(1, 15, BitConverter.GetBytes(1));
        shared.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        shared.Listen();
        var port = ((IPEndPoint)shared.LocalEndPoint!).Port;

        Assert.Equal(AppListener.Verdict.Shared, AppListener.Check(port, Environment.ProcessId, out var sockets));
        Assert.Equal(AppListener.DiagListeners(port)!.Order(), sockets);
        Assert.True(AppListener.Joinable(port, refused: 1));

        using var alone = new TcpListener(IPAddress.Loopback, 0);
        alone.Start();
        var alonePort = ((IPEndPoint)alone.LocalEndpoint).Port;
        Assert.Equal(AppListener.Verdict.Owned, AppListener.Check(alonePort, Environment.ProcessId, out _));
        Assert.False(AppListener.Joinable(alonePort, refused: 1));
    }

    /// <summary>
    /// A dump's NLMSG_DONE carries its result: a negative errno (here -ENOENT, a missing tcp_diag) means the listeners
    /// before it may not be all of them, so the dump is not used and the tables are read instead.
    /// </summary>
    [Theory]
    [InlineData(0, true)]
    [InlineData(-2, false)]
    public void A_dump_that_ends_with_an_error_is_not_taken_as_complete(int result, bool complete)
    {
        var datagram = new byte[16 + 72 + 20];
        var span = datagram.AsSpan();

        // One inet_diag_msg: an IPv4 listener on 127.0.0.1:Port, inode 4242.
        BitConverter.TryWriteBytes(span, 16 + 72);
        BitConverter.TryWriteBytes(span[4..], (ushort)20);
        span[16] = 2;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(span[20..], Port);
        IPAddress.Loopback.TryWriteBytes(span[24..], out _);
        BitConverter.TryWriteBytes(span[(16 + 68)..], 4242u);

        // NLMSG_DONE and its int.
        BitConverter.TryWriteBytes(span[88..], 20);
        BitConverter.TryWriteBytes(span[92..], (ushort)3);
        BitConverter.TryWriteBytes(span[104..], result);

        var found = new HashSet<ulong>();
        Assert.Equal(complete ? AppListener.Batch.Done : AppListener.Batch.Failed, AppListener.Parse(datagram, Port, found));
        Assert.Equal([4242UL], found);
    }

    public void Dispose() => Directory.Delete(_proc, recursive: true);

    private static string Listening(string address, int port, ulong inode) =>
        $"   0: {address}:{port:X4} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0";

    private void Tcp(params string[] lines) => Table("tcp", lines);

    private void Tcp6(params string[] lines) => Table("tcp6", lines);

    private void Table(string name, string[] lines)
    {
        Directory.CreateDirectory(Path.Combine(_proc, "net"));
        File.WriteAllLines(Path.Combine(_proc, "net", name), [Header, .. lines]);
    }

    private void Process(int pid, int parent, ulong[] sockets)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_proc, pid.ToString(System.Globalization.CultureInfo.InvariantCulture))).FullName;
        File.WriteAllText(Path.Combine(dir, "stat"), $"{pid} (a (b) c) S {parent} {pid} {pid} 0 -1");
        var fd = Directory.CreateDirectory(Path.Combine(dir, "fd")).FullName;
        File.CreateSymbolicLink(Path.Combine(fd, "0"), "/dev/null");
        for (var i = 0; i < sockets.Length; i++)
        {
            File.CreateSymbolicLink(Path.Combine(fd, (i + 3).ToString(System.Globalization.CultureInfo.InvariantCulture)), $"socket:[{sockets[i]}]");
        }
    }
}
