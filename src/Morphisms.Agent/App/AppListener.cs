using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Enumeration;
using System.Net;
using System.Runtime.InteropServices;
using Morphisms.Attestation;

namespace Morphisms.Agent.App;

/// <summary>
/// Who listens on the app's loopback port, on Linux: the listening TCP sockets that would take a connection to
/// <c>127.0.0.1:PORT</c>, each of which must be open in the app or a process it started. The port is chosen before the
/// app starts and bound only once the secrets are in place, and a serving host's instances share one network namespace:
/// another function's instance could bind it first, answer the readiness probe and be sent every decrypted request.
/// Sockets are matched by inode, the one name both the kernel's socket lists and <c>/proc/PID/fd</c> give them. Owning
/// the port now is not enough where a listener has <c>SO_REUSEPORT</c>: another process of the same user that sets it
/// too may bind the port beside it later, and the kernel then spreads new connections across both.
/// </summary>
internal static partial class AppListener
{
    /// <summary>What <see cref="Check"/> found.</summary>
    internal enum Verdict
    {
        /// <summary>Every listener that could take the connection is the app's (or its descendants').</summary>
        Owned,

        /// <summary>Nothing listens there (any more): probe again.</summary>
        NotListening,

        /// <summary>A listener that could take the connection is in no descriptor of the app or its descendants.</summary>
        Foreign,

        /// <summary>
        /// Every listener is the app's, but one has <c>SO_REUSEPORT</c> set: another process of the app's user could bind
        /// the port beside it and take a share of the connections.
        /// </summary>
        Shared,
    }

    // The st column of a listening socket in /proc/net/tcp (TCP_LISTEN).
    private const string Listen = "0A";

    private const byte AfInet = 2;
    private const byte AfInet6 = 10;

    /// <summary>
    /// Whether the sockets listening where a connection to 127.0.0.1:<paramref name="port"/> would go belong to
    /// <paramref name="appPid"/> or its descendants, and keep others from joining them; <paramref name="sockets"/> names
    /// the inodes that do not belong (<see cref="Verdict.Foreign"/>) or let others join (<see cref="Verdict.Shared"/>).
    /// </summary>
    /// <exception cref="IOException">The socket lists, the app's descriptors or its listeners' options cannot be read (the caller fails closed).</exception>
    /// <exception cref="UnauthorizedAccessException">The same, for want of permission (an app that made itself non-dumpable).</exception>
    public static Verdict Check(int port, int appPid, out IReadOnlyList<ulong> sockets)
    {
        var held = new Dictionary<ulong, (int Pid, int Fd)>();
        var verdict = Owner(DiagListeners(port) ?? TableListeners("/proc", port), appPid, "/proc", out sockets, held);
        return verdict == Verdict.Owned ? Sharing(port, held, out sockets) : verdict;
    }

    /// <summary>
    /// Which of <paramref name="listening"/> are open in no descriptor of <paramref name="appPid"/> or its descendants;
    /// <paramref name="held"/>, when given, gets a process and descriptor holding each of the others.
    /// </summary>
    internal static Verdict Owner(HashSet<ulong> listening, int appPid, string proc, out IReadOnlyList<ulong> foreign, Dictionary<ulong, (int Pid, int Fd)>? held = null)
    {
        foreign = [];
        if (listening.Count == 0)
        {
            return Verdict.NotListening;
        }

        // The app's own descriptors first: the usual server holds its listener itself.
        var missing = new HashSet<ulong>(listening);
        RemoveOwned(proc, appPid, missing, held, required: true);
        if (missing.Count > 0)
        {
            // A launcher (a shell without exec, a supervisor with workers) may leave the listener to a child.
            foreach (var child in ProcessTree.Descendants(appPid, proc))
            {
                RemoveOwned(proc, child, missing, held, required: false);
                if (missing.Count == 0)
                {
                    break;
                }
            }
        }

        foreign = [.. missing.Order()];
        return missing.Count == 0 ? Verdict.Owned : Verdict.Foreign;
    }

    // NETLINK_SOCK_DIAG, as ss(8) asks: for TCP_LISTEN alone the kernel walks only its listening hash, where reading
    // /proc/net/tcp and tcp6 walks every bucket of the established hash too, tens of milliseconds per file on a large
    // one. Null where the kernel has no inet_diag (or a filter forbids netlink), or a dump fails: the tables are read instead.
    internal static HashSet<ulong>? DiagListeners(int port)
    {
        const int afNetlink = 16, sockDgram = 2, sockCloexec = 0x80000, netlinkSockDiag = 4;
        var fd = SocketNative(afNetlink, sockDgram | sockCloexec, netlinkSockDiag);
        if (fd < 0)
        {
            return null;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(32 * 1024);
        try
        {
            var found = new HashSet<ulong>();
            return Dump(fd, AfInet, port, found, buffer) && Dump(fd, AfInet6, port, found, buffer) ? found : null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _ = CloseNative(fd);
        }
    }

    // One SOCK_DIAG_BY_FAMILY dump of the family's listening TCP sockets (linux/inet_diag.h); false on any error.
    private static bool Dump(int fd, byte family, int port, HashSet<ulong> found, byte[] buffer)
    {
        const ushort sockDiagByFamily = 20, nlmFRequestDump = 0x301;
        const int header = 16, request = header + 56, tcpListen = 10, ipprotoTcp = 6;

        // nlmsghdr (host order), then inet_diag_req_v2: family, protocol, no extensions, the states wanted, a zero socket id.
        Span<byte> message = stackalloc byte[request];
        message.Clear();
        MemoryMarshal.Write(message, (uint)request);
        MemoryMarshal.Write(message[4..], sockDiagByFamily);
        MemoryMarshal.Write(message[6..], nlmFRequestDump);
        MemoryMarshal.Write(message[8..], 1u);
        message[header] = family;
        message[header + 1] = ipprotoTcp;
        MemoryMarshal.Write(message[(header + 4)..], 1u << tcpListen);
        if (SendNative(fd, message, (nuint)request, 0) != request)
        {
            return false;
        }

        while (true)
        {
            var received = (int)ReceiveNative(fd, buffer, (nuint)buffer.Length, 0);
            if (received <= 0)
            {
                return false;
            }

            switch (Parse(buffer.AsSpan(0, received), port, found))
            {
                case Batch.Done:
                    return true;
                case Batch.Failed:
                    return false;
            }
        }
    }

    /// <summary>Where one datagram of a dump leaves it.</summary>
    internal enum Batch
    {
        /// <summary>More datagrams follow.</summary>
        More,

        /// <summary>The dump ended, complete.</summary>
        Done,

        /// <summary>The dump failed, or ended incomplete: its listeners cannot be trusted to be all of them.</summary>
        Failed,
    }

    /// <summary>
    /// Adds to <paramref name="found"/> the inodes of the listeners in one datagram of a SOCK_DIAG_BY_FAMILY dump that
    /// take 127.0.0.1:<paramref name="port"/>.
    /// </summary>
    internal static Batch Parse(ReadOnlySpan<byte> received, int port, HashSet<ulong> found)
    {
        const ushort nlmsgError = 2, nlmsgDone = 3;
        const int header = 16, diagMessage = 72;
        for (var at = 0; at + header <= received.Length;)
        {
            var length = (int)MemoryMarshal.Read<uint>(received[at..]);
            var type = MemoryMarshal.Read<ushort>(received[(at + 4)..]);
            if (length < header || at + length > received.Length || type == nlmsgError)
            {
                return Batch.Failed;
            }

            if (type == nlmsgDone)
            {
                // NLMSG_DONE carries the dump's own result: a negative errno when it failed part way (a protocol whose
                // diag module is missing answers -ENOENT), after which the listeners seen so far are not all of them.
                return length >= header + 4 && MemoryMarshal.Read<int>(received[(at + header)..]) >= 0 ? Batch.Done : Batch.Failed;
            }

            // inet_diag_msg: family, state, timer, retrans, then the socket id (sport and dport big-endian, src, dst,
            // interface, cookie), expires, rqueue, wqueue, uid, inode.
            var diag = received.Slice(at + header, length - header);
            if (diag.Length >= diagMessage && BinaryPrimitives.ReadUInt16BigEndian(diag[4..]) == port
                && TakesLoopback(new IPAddress(diag.Slice(8, diag[0] == AfInet ? 4 : 16))))
            {
                found.Add(MemoryMarshal.Read<uint>(diag[68..]));
            }

            at += (length + 3) & ~3;
        }

        return Batch.More;
    }

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int SocketNative(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint SendNative(int fd, ReadOnlySpan<byte> buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint ReceiveNative(int fd, Span<byte> buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    // SO_REUSEPORT lets a later socket of the same uid that sets it too bind the same address and port, whoever owns the
    // port now. The flag is read off a duplicate of each of the app's listeners (pidfd_getfd, Linux 5.6): the agent is
    // the app's ancestor under its uid and the app is dumpable after its exec, which is what the kernel's ptrace check
    // asks (the agent's own non-dumpable flag guards it as a target, not as a caller). A seccomp filter may refuse the
    // call even so (the container runtimes' default profile, which `morph export knative` asks for, allows it only with
    // CAP_SYS_PTRACE), and so may Yama's ptrace_scope 2 or an app that gained capabilities: the kernel is then asked the
    // same question by trying it (Joinable).
    private static Verdict Sharing(int port, Dictionary<ulong, (int Pid, int Fd)> held, out IReadOnlyList<ulong> shared)
    {
        const int eperm = 1, esrch = 3, ebadf = 9, enosys = 38, enotsock = 88;
        var found = new List<ulong>();
        foreach (var (inode, (pid, fd)) in held)
        {
            switch (ReusePort(pid, fd, out var errno))
            {
                case true:
                    found.Add(inode);
                    break;
                case false:
                    break;
                case null when errno is esrch or ebadf or enotsock:
                    // The process or its descriptor went meanwhile: probe again.
                    shared = [];
                    return Verdict.NotListening;
                case null when errno is eperm or enosys:
                    shared = [.. held.Keys.Order()];
                    return Joinable(port, errno) ? Verdict.Shared : Verdict.Owned;
                default:
                    throw new IOException($"cannot read SO_REUSEPORT of the app's listener (socket inode {inode}, pid {pid}, fd {fd}): {Marshal.GetPInvokeErrorMessage(errno)}");
            }
        }

        shared = [.. found.Order()];
        return found.Count == 0 ? Verdict.Owned : Verdict.Shared;
    }

    // SO_REUSEPORT of the socket at descriptor `fd` of `pid`, read off a duplicate closed at once; null and errno when
    // it cannot be had.
    private static bool? ReusePort(int pid, int fd, out int errno)
    {
        // The generic syscall numbers, the same on x86-64 and arm64 (every architecture since 5.1's renumbering).
        const long pidfdOpen = 434, pidfdGetfd = 438;
        const int solSocket = 1, soReusePort = 15;
        var pidfd = (int)SyscallNative(pidfdOpen, pid, 0, 0);
        if (pidfd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        int copy;
        try
        {
            // Close-on-exec, as the kernel makes every descriptor pidfd_getfd returns.
            copy = (int)SyscallNative(pidfdGetfd, pidfd, fd, 0);
            errno = copy < 0 ? Marshal.GetLastPInvokeError() : 0;
        }
        finally
        {
            _ = CloseNative(pidfd);
        }

        if (copy < 0)
        {
            return null;
        }

        try
        {
            var value = 0;
            var length = (uint)sizeof(int);
            if (GetSockOptNative(copy, solSocket, soReusePort, ref value, ref length) != 0)
            {
                errno = Marshal.GetLastPInvokeError();
                return null;
            }

            return value != 0;
        }
        finally
        {
            _ = CloseNative(copy);
        }
    }

    /// <summary>
    /// Whether another socket of this user could bind 127.0.0.1:<paramref name="port"/> with <c>SO_REUSEPORT</c> beside
    /// the listeners there now, which the kernel allows only where every one of them has it too: tried, by a socket that
    /// never listens (so takes no connection) and is closed at once. <paramref name="refused"/> is why the listeners'
    /// own flags could not be read, for the message should this fail too.
    /// </summary>
    internal static bool Joinable(int port, int refused)
    {
        const int afInet = 2, sockStream = 1, sockCloexec = 0x80000, solSocket = 1, soReusePort = 15, eaddrinuse = 98;
        var fd = SocketNative(afInet, sockStream | sockCloexec, 0);
        var errno = Marshal.GetLastPInvokeError();
        if (fd >= 0)
        {
            try
            {
                var one = 1;
                Span<byte> address = stackalloc byte[16];
                address.Clear();
                MemoryMarshal.Write(address, (ushort)afInet);
                BinaryPrimitives.WriteUInt16BigEndian(address[2..], (ushort)port);
                IPAddress.Loopback.TryWriteBytes(address[4..], out _);
                if (SetSockOptNative(fd, solSocket, soReusePort, ref one, sizeof(int)) == 0)
                {
                    if (BindNative(fd, address, (uint)address.Length) == 0)
                    {
                        return true;
                    }

                    if (Marshal.GetLastPInvokeError() == eaddrinuse)
                    {
                        return false;
                    }
                }

                errno = Marshal.GetLastPInvokeError();
            }
            finally
            {
                _ = CloseNative(fd);
            }
        }

        throw new IOException($"cannot tell whether the app's listener lets another process bind 127.0.0.1:{port} beside it: pidfd_getfd, to read its SO_REUSEPORT, was refused ({Marshal.GetPInvokeErrorMessage(refused)}), and a trial bind failed ({Marshal.GetPInvokeErrorMessage(errno)})");
    }

    // syscall(2) is variadic in libc; on x86-64 and arm64 Linux integer arguments travel the same way either way.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallNative(long number, long arg1, long arg2, long arg3);

    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static partial int GetSockOptNative(int fd, int level, int name, ref int value, ref uint length);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSockOptNative(int fd, int level, int name, ref int value, uint length);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int BindNative(int fd, ReadOnlySpan<byte> address, uint length);

    /// <summary>The listeners of <c>PROC/net/tcp</c> and <c>tcp6</c> that take 127.0.0.1:<paramref name="port"/>.</summary>
    internal static HashSet<ulong> TableListeners(string proc, int port)
    {
        var listening = new HashSet<ulong>();
        Listeners(Path.Combine(proc, "net", "tcp"), port, listening, required: true);
        Listeners(Path.Combine(proc, "net", "tcp6"), port, listening, required: false);
        return listening;
    }

    // Lines: "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...", addresses as hex words in the
    // kernel's byte order.
    private static void Listeners(string table, int port, HashSet<ulong> inodes, bool required)
    {
        if (!required && !File.Exists(table))
        {
            return; // no IPv6
        }

        using var reader = new StreamReader(table);
        reader.ReadLine(); // header
        while (reader.ReadLine() is { } line)
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 10 || fields[3] != Listen)
            {
                continue;
            }

            var local = fields[1].Split(':');
            if (local.Length == 2 && int.Parse(local[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture) == port
                && TakesLoopback(Address(local[0])))
            {
                inodes.Add(ulong.Parse(fields[9], CultureInfo.InvariantCulture));
            }
        }
    }

    // 127.0.0.1 itself, the IPv4 wildcard, and the IPv6 wildcard (dual-stack unless IPV6_V6ONLY, which the table does
    // not show: counted, so a doubt refuses rather than serves).
    private static bool TakesLoopback(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        return address.Equals(IPAddress.Loopback) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
    }

    // Each 32-bit word is printed as the kernel holds it in memory, so its bytes are in host order.
    private static IPAddress Address(string hex)
    {
        var bytes = new byte[hex.Length / 2];
        for (var word = 0; word < bytes.Length / 4; word++)
        {
            var value = uint.Parse(hex.AsSpan(word * 8, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            BitConverter.TryWriteBytes(bytes.AsSpan(word * 4, 4), value);
        }

        return new IPAddress(bytes);
    }

    // Removes from `missing` the sockets open in a process: its fd links read "socket:[INODE]". Listing the directory
    // costs what it costs (the kernel makes an entry per descriptor, some 5 µs each in a small VM); the links are read
    // from the highest descriptor down and only until all are found, since a server opens its listener after the
    // runtime's own descriptors (a .NET app: its ~150th of ~155), so a few reads, not one per descriptor.
    private static void RemoveOwned(string proc, int pid, HashSet<ulong> missing, Dictionary<ulong, (int Pid, int Fd)>? held, bool required)
    {
        var directory = Path.Combine(proc, pid.ToString(CultureInfo.InvariantCulture), "fd");
        List<int> fds;
        try
        {
            fds = [.. new FileSystemEnumerable<int>(directory, static (ref FileSystemEntry entry) =>
                int.TryParse(entry.FileName, NumberStyles.None, CultureInfo.InvariantCulture, out var fd) ? fd : -1)];
        }
        catch (Exception e) when (!required && e is IOException or UnauthorizedAccessException)
        {
            return; // a child that exited meanwhile
        }

        fds.Sort();
        for (var i = fds.Count - 1; i >= 0 && missing.Count > 0; i--)
        {
            string? target;
            try
            {
                target = new FileInfo(Path.Combine(directory, fds[i].ToString(CultureInfo.InvariantCulture))).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile
            }

            if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal) && target.EndsWith(']')
                && ulong.TryParse(target.AsSpan(8, target.Length - 9), NumberStyles.None, CultureInfo.InvariantCulture, out var inode))
            {
                if (missing.Remove(inode))
                {
                    held?.Add(inode, (pid, fds[i]));
                }
            }
        }
    }
}
