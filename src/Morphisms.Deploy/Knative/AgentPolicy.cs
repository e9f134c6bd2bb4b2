using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Deploy.Knative;

/// <summary>
/// One container a Kata agent policy admits (by its Kubernetes container name) and what the policy pins about it.
/// </summary>
public sealed record PolicyContainer
{
    /// <summary>The container's name in the pod (the <c>io.kubernetes.cri.container-name</c> annotation containerd sets).</summary>
    public required string Name { get; init; }

    /// <summary>The image the agent must pull for it (the guest-pull storage's source), pinned by digest; null pins nothing.</summary>
    public string? Image { get; init; }

    /// <summary>
    /// The process's whole argv as the agent receives it: the pod's <c>command</c> followed by its <c>args</c>, or the
    /// image's entrypoint and cmd where the pod names none (containerd resolves them before the agent sees the spec).
    /// Always pinned: a container whose argv the host chose could run a file the host copied in.
    /// </summary>
    public required IReadOnlyList<string> Args { get; init; }

    /// <summary>
    /// Arguments Kubernetes expands before the agent sees them (<c>$(POD_IP)</c>): the literal argument in
    /// <see cref="Args"/> mapped to the regular expression the expanded value must match.
    /// </summary>
    public IReadOnlyDictionary<string, string> Expansions { get; init; } = new Dictionary<string, string>();

    /// <summary>Variables that must be present with exactly these values.</summary>
    public IReadOnlyDictionary<string, string> Env { get; init; } = new Dictionary<string, string>();

    /// <summary>Further variable names accepted with any value (ones the runtime, Kubernetes or Knative add, or whose value is checked elsewhere).</summary>
    public IReadOnlyList<string> EnvNames { get; init; } = [];

    /// <summary>Accept any environment (a container whose variables the export cannot know).</summary>
    public bool AnyEnv { get; init; }

    /// <summary>The container's memory-backed <c>emptyDir</c> volumes: (mount path, volume name).</summary>
    public IReadOnlyList<(string Destination, string Volume)> MemoryVolumes { get; init; } = [];
}

/// <summary>
/// Writes a Kata agent policy (<c>policy.rego</c>, Rego package <c>agent_policy</c>) for a confidential pod. The Kata
/// agent inside the TEE evaluates every request the host sends it (kubelet → containerd → the Kata shim → the agent)
/// against it; carried in initdata, it is covered by SNP HOST_DATA / TDX MRCONFIGID. Without one, CoCo's default lets
/// the host exec into the pod, copy files into it and run any image with any arguments while the report stays the same.
/// <para>
/// Written in the manner of Kata's genpolicy rules (same request names and input fields), but far smaller: it knows the
/// containers of one pod by name and pins their image, argv and environment, refuses exec, stdin, policy changes and
/// the guest's clock and entropy, refuses devices, device cgroup rules and sysctls other than containerd's own, and
/// confines mounts, storages, copied files, capabilities (no <c>MKNOD</c> but the pause container's) and namespaces to
/// what a plain Kubernetes container needs. Exactly what is pinned and what is not: docs/kubernetes.md.
/// </para>
/// </summary>
public static class AgentPolicy
{
    /// <summary>Variable names the container runtime and Kubernetes add to every container (values not known at export).</summary>
    public static readonly IReadOnlyList<string> RuntimeVariables = ["PATH", "HOME", "HOSTNAME", "TERM", "LANG"];

    /// <summary>
    /// The policy text. <paramref name="subject"/> names what it is for in its header comment (one line).
    /// </summary>
    /// <exception cref="ArgumentException">No container, a duplicate name, or a value initdata cannot carry.</exception>
    public static string Rego(string subject, IReadOnlyList<PolicyContainer> containers)
    {
        ArgumentNullException.ThrowIfNull(containers);
        if (containers.Count == 0)
        {
            throw new ArgumentException("an agent policy needs at least one container");
        }

        var data = new JsonObject();
        foreach (var container in containers)
        {
            if (data.ContainsKey(container.Name))
            {
                throw new ArgumentException($"container '{container.Name}' appears twice in the agent policy");
            }

            data[container.Name] = new JsonObject
            {
                ["image"] = container.Image,
                ["args"] = new JsonArray([.. container.Args.Select(a => (JsonNode?)a)]),
                ["expansions"] = Object(container.Expansions),
                ["env"] = Object(container.Env),
                ["env_names"] = new JsonArray([.. container.EnvNames.Order(StringComparer.Ordinal).Select(n => (JsonNode?)n)]),
                ["env_patterns"] = new JsonArray(container.AnyEnv ? [] : ["^KUBERNETES_[A-Z0-9_]+$"]),
                ["any_env"] = container.AnyEnv,
                ["memory_volumes"] = new JsonArray([.. container.MemoryVolumes.Select(v => (JsonNode?)new JsonObject { ["destination"] = v.Destination, ["volume"] = v.Volume })]),
            };
        }

        var json = data.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        return Header.Replace("{subject}", subject.ReplaceLineEndings(" "), StringComparison.Ordinal)
            + "morph_containers := " + json + "\n" + Rules;
    }

    private static JsonObject Object(IReadOnlyDictionary<string, string> values)
    {
        var result = new JsonObject();
        foreach (var (key, value) in values.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            result[key] = value;
        }

        return result;
    }

    // Request names and input fields are the Kata agent's (src/libs/protocols agent.proto, as genpolicy's rules.rego
    // reads them: input.OCI.Process.Args, input.storages[].driver, mounts' type_, ...). Requests not named are refused.
    private const string Header = """
        package agent_policy

        import future.keywords.every
        import future.keywords.if
        import future.keywords.in

        # Kata agent policy written by `morph export` for {subject}.
        # The Kata agent inside the TEE checks every request of the host (kubelet, containerd, the Kata shim) against it.
        # It is part of initdata, so the report's HOST_DATA (SNP) / MRCONFIGID (TDX) commit to it. What it pins and what
        # it does not: docs/kubernetes.md in Morphisms.

        default AllowRequestsFailingPolicy := false

        # Decided by the rules below.
        default CreateContainerRequest := false
        default CreateSandboxRequest := false
        default CopyFileRequest := false
        default UpdateInterfaceRequest := false
        default UpdateRoutesRequest := false

        # Lifecycle, status, resources and networking: the host may stop or starve the pod (availability is out of scope)
        # and learns nothing from these; the network is untrusted anyway.
        default AddARPNeighborsRequest := true
        default DestroySandboxRequest := true
        default GetOOMEventRequest := true
        default GuestDetailsRequest := true
        default ListInterfacesRequest := true
        default ListRoutesRequest := true
        default MemHotplugByProbeRequest := true
        default OnlineCPUMemRequest := true
        default RemoveContainerRequest := true
        default RemoveStaleVirtiofsShareMountsRequest := true
        default SignalProcessRequest := true
        default StartContainerRequest := true
        default StatsContainerRequest := true
        default TtyWinResizeRequest := true
        default WaitProcessRequest := true

        # The containers' stdout and stderr: their logs, which the trust model leaves to the host. No exec process can
        # exist (ExecProcessRequest is refused), so no stream of one can be read.
        default ReadStreamRequest := true

        # Refused: a process or input the host chooses inside the TEE (exec, stdin), a new policy, the guest's clock and
        # entropy, swap on a host device, image pulls outside container creation, changing a running container, tracing.
        default AddSwapRequest := false
        default CloseStdinRequest := false
        default ExecProcessRequest := false
        default GetDiagnosticDataRequest := false
        default GetMetricsRequest := false
        default PauseContainerRequest := false
        default PullImageRequest := false
        default ReseedRandomDevRequest := false
        default ResumeContainerRequest := false
        default SetGuestDateTimeRequest := false
        default SetPolicyRequest := false
        default StartTracingRequest := false
        default StopTracingRequest := false
        default UpdateContainerRequest := false
        default UpdateEphemeralMountsRequest := false
        default WriteStreamRequest := false

        # The containers this pod may run, by name, and what is pinned about each (a null image: not pinned).

        """;

    private const string Rules = """

        # containerd's default capabilities without MKNOD: none reaches another container's memory, the guest kernel or a
        # device. MKNOD is refused because a device node is how a process would reach the guest's attestation device
        # (/dev/sev-guest, /dev/tdx_guest) and get reports carrying this pod's HOST_DATA / MRCONFIGID; the exported
        # containers drop every capability, and Knative's queue-proxy does too.
        morph_capabilities := {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}

        # The pause container keeps containerd's whole default set, MKNOD included: Kubernetes has no field to drop a
        # sandbox's capabilities, so containerd always grants it its defaults (genpolicy allows the same). Its process is
        # the pinned /pause, and with no device cgroup rule (morph_common) a node it made could not be opened.
        morph_pause_capabilities := morph_capabilities | {"MKNOD"}

        # The only sysctls a container may carry, with exactly these values: the two containerd adds to a pod's
        # containers (by default from containerd 2.0; genpolicy allows the same). Any other is the host's choice, and some
        # open the pod to the network: net.ipv4.conf.all.route_localnet=1 would route packets from outside to 127.0.0.1,
        # where the app serves plaintext (CVE-2020-8558).
        morph_sysctls := {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}

        # Kernel file systems a container gets, by mount point: the allowed types (the source names the type too).
        morph_kernel_mounts := {
            "/proc": {"proc"},
            "/dev": {"tmpfs"},
            "/dev/pts": {"devpts"},
            "/dev/mqueue": {"mqueue"},
            "/sys": {"sysfs"},
            "/sys/fs/cgroup": {"cgroup", "cgroup2"}
        }

        morph_read_only_mounts := {"/sys", "/sys/fs/cgroup"}

        morph_read_only_paths := {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

        # Files Kata copies in for a container (no file system is shared with the host in a TEE), one level below its
        # shared directory as <container id>-<16 random>-<name>: hosts, hostname, resolv.conf, termination-log.
        morph_copied_file := "^/run/kata-containers/shared/containers/(passthrough/|watchable/)?[a-z0-9]{64}-[a-z0-9]{16}-[^/]+$"

        morph_copied_mounts := {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/termination-log"}

        # The pause container's variables: PATH from the pause image's config (its value does not matter: the argv is
        # an absolute path) and HOSTNAME; nothing else, in the shape of a container entry for morph_env.
        morph_pause := {"env": {}, "env_names": ["HOSTNAME", "PATH"], "env_patterns": [], "any_env": false}

        # An address on the loopback network (127.0.0.0/8, ::1, IPv4-mapped 127/8), optionally with a prefix length.
        morph_loopback := "(?i)^(127\\.|::ffff:127\\.|[0:]*:0{0,3}1(/[0-9]+)?$)"

        morph_list(x) := x if {
            is_array(x)
        }

        morph_list(x) := [] if {
            is_null(x)
        }

        morph_object(x) := x if {
            is_object(x)
        }

        morph_object(x) := {} if {
            is_null(x)
        }

        morph_storages := morph_list(object.get(input, "storages", null))

        morph_image_pulls := [s | some s in morph_storages; s.driver == "image_guest_pull"]

        # The pod sandbox: no OCI hooks or kernel modules in the guest, no PID namespace shared between containers, and
        # no storage but the sandbox's /dev/shm.
        CreateSandboxRequest if {
            count(input.guest_hook_path) == 0
            count(morph_list(object.get(input, "kernel_modules", null))) == 0
            not input.sandbox_pidns
            every s in morph_storages {
                s.driver == "ephemeral"
                s.fstype == "tmpfs"
                s.mount_point == "/run/kata-containers/sandbox/shm"
            }
        }

        # The pause container: guest-pulled storage marked as the sandbox's, so the agent runs the pause bundle of the
        # measured guest image, whatever image the host names; and its process is the pause binary alone (Kubernetes'
        # pause image's entrypoint, as genpolicy pins it), with only the variables containerd gives it. Not every agent
        # replaces the host's process with the bundle's, and one the host chose would share the pod's loopback.
        CreateContainerRequest if {
            input.OCI.Annotations["io.kubernetes.cri.container-type"] == "sandbox"
            morph_common(morph_pause_capabilities)
            count(morph_image_pulls) == 1
            count(morph_storages) == 1
            morph_pause_pull(morph_image_pulls[0])
            input.OCI.Process.Args == ["/pause"]
            morph_env(morph_pause, morph_list(object.get(input.OCI.Process, "Env", null)))
            every m in morph_list(object.get(input.OCI, "Mounts", null)) {
                morph_pause_mount(m)
            }
        }

        # A container of the pod, by name: its image, argv, environment, mounts and storages as pinned above.
        CreateContainerRequest if {
            input.OCI.Annotations["io.kubernetes.cri.container-type"] == "container"
            c := morph_containers[input.OCI.Annotations["io.kubernetes.cri.container-name"]]
            morph_common(morph_capabilities)
            count(morph_image_pulls) == 1
            morph_image(c, morph_image_pulls[0])
            every s in morph_storages {
                morph_storage(c, s)
            }
            morph_args(c, input.OCI.Process.Args)
            morph_env(c, morph_list(object.get(input.OCI.Process, "Env", null)))
            every m in morph_list(object.get(input.OCI, "Mounts", null)) {
                morph_mount(c, m)
            }
        }

        # Whatever the container: its root is the image the agent pulled for it; its own mount namespace (and PID
        # namespace, see CreateSandboxRequest); no OCI hooks (they run programs in the guest outside any container); no
        # devices, neither nodes nor device cgroup rules (the Kata shim sends none: the agent's defaults let a container
        # open only /dev/null and its kin, so a rule is how the host would open the attestation device to one); only the
        # sysctls above; at most the given capabilities; /proc/sys and its kin read-only.
        morph_common(capabilities) if {
            regex.match("^[A-Za-z0-9][A-Za-z0-9_.-]*$", input.container_id)
            morph_root(input.OCI.Root.Path)
            not input.sandbox_pidns
            is_null(object.get(input.OCI, "Hooks", null))
            count(morph_list(object.get(input.OCI.Linux, "Devices", null))) == 0
            count(morph_list(object.get(input, "devices", null))) == 0
            count(morph_list(object.get(morph_object(object.get(input.OCI.Linux, "Resources", null)), "Devices", null))) == 0
            every name, value in morph_object(object.get(input.OCI.Linux, "Sysctl", null)) {
                morph_sysctls[name] == value
            }
            some ns in input.OCI.Linux.Namespaces
            ns.Type in {"mount", "mnt"}
            object.get(ns, "Path", "") in {"", null}
            every path in morph_read_only_paths {
                morph_read_only_path(path)
            }
            caps := input.OCI.Process.Capabilities
            every kind in ["Ambient", "Bounding", "Effective", "Inheritable", "Permitted"] {
                every cap in morph_list(object.get(caps, kind, null)) {
                    morph_capability(cap) in capabilities
                }
            }
        }

        morph_root(path) if {
            path == concat("", ["/run/kata-containers/", input.container_id, "/rootfs"])
        }

        morph_root(path) if {
            path == concat("", ["/run/kata-containers/shared/containers/", input.container_id, "/rootfs"])
        }

        morph_read_only_path(path) if {
            path in morph_list(object.get(input.OCI.Linux, "ReadonlyPaths", null))
        }

        morph_read_only_path(path) if {
            path in morph_list(object.get(input.OCI.Linux, "MaskedPaths", null))
        }

        morph_capability(cap) := substring(cap, 4, count(cap) - 4) if {
            startswith(cap, "CAP_")
        }

        morph_capability(cap) := cap if {
            not startswith(cap, "CAP_")
        }

        morph_pause_pull(s) if {
            some option in s.driver_options
            startswith(option, "image_guest_pull=")
            volume := json.unmarshal(trim_prefix(option, "image_guest_pull="))
            volume.metadata["io.kubernetes.cri.container-type"] == "sandbox"
        }

        # The agent pulls the guest-pull storage's source into the container's root.
        morph_image(c, s) if {
            is_null(c.image)
        }

        morph_image(c, s) if {
            s.source == c.image
        }

        morph_storage(c, s) if {
            s.driver == "image_guest_pull"
        }

        morph_storage(c, s) if {
            s.driver == "ephemeral"
            s.fstype == "tmpfs"
            some v in c.memory_volumes
            s.mount_point == concat("", ["/run/kata-containers/sandbox/ephemeral/", v.volume])
        }

        # Every container's argv is pinned: none may run what the host names.
        morph_args(c, args) if {
            count(args) == count(c.args)
            every i, arg in args {
                morph_arg(c.args[i], arg, c)
            }
        }

        morph_arg(pinned, arg, c) if {
            arg == pinned
        }

        morph_arg(pinned, arg, c) if {
            regex.match(c.expansions[pinned], arg)
        }

        # Every pinned variable present with its value; every other one named as allowed.
        morph_env(c, env) if {
            every name, value in c.env {
                concat("=", [name, value]) in env
            }
            every variable in env {
                morph_variable(c, variable)
            }
        }

        morph_variable(c, variable) if {
            c.any_env
        }

        morph_variable(c, variable) if {
            i := indexof(variable, "=")
            i > 0
            name := substring(variable, 0, i)
            value := substring(variable, i + 1, (count(variable) - i) - 1)
            morph_variable_value(c, name, value)
        }

        morph_variable_value(c, name, value) if {
            c.env[name] == value
        }

        morph_variable_value(c, name, value) if {
            not morph_pinned(c, name)
            name in c.env_names
        }

        morph_variable_value(c, name, value) if {
            not morph_pinned(c, name)
            some pattern in c.env_patterns
            regex.match(pattern, name)
        }

        morph_pinned(c, name) if {
            c.env[name] != null
        }

        morph_mount(c, m) if {
            morph_mount_common(m)
        }

        # containerd mounts a container's copied files read-write and without noexec (genpolicy pins the same options),
        # so they are not refused here: CopyFileRequest keeps execute bits off the files themselves.
        morph_mount(c, m) if {
            morph_copied_mount(m)
        }

        morph_mount(c, m) if {
            some v in c.memory_volumes
            m.destination == v.destination
            m.type_ == "bind"
            m.source == concat("", ["/run/kata-containers/sandbox/ephemeral/", v.volume])
        }

        morph_mount_common(m) if {
            m.type_ in morph_kernel_mounts[m.destination]
            m.source in morph_kernel_mounts[m.destination]
            morph_mount_read_only(m)
        }

        morph_mount_common(m) if {
            m.destination == "/dev/shm"
            m.type_ == "bind"
            m.source == "/run/kata-containers/sandbox/shm"
        }

        morph_mount_common(m) if {
            m.destination == "/dev/shm"
            m.type_ == "tmpfs"
            m.source == "shm"
        }

        # The pause container's copied files (its /etc/resolv.conf) only read-only and noexec, as containerd mounts
        # them and genpolicy requires.
        morph_pause_mount(m) if {
            morph_mount_common(m)
        }

        morph_pause_mount(m) if {
            morph_copied_mount(m)
            "ro" in m.options
            "noexec" in m.options
        }

        morph_copied_mount(m) if {
            m.destination in morph_copied_mounts
            m.type_ == "bind"
            regex.match(morph_copied_file, m.source)
        }

        morph_mount_read_only(m) if {
            not m.destination in morph_read_only_mounts
        }

        morph_mount_read_only(m) if {
            "ro" in m.options
        }

        # Only regular files, only where Kata puts a container's copied files: no symlink (a mount would follow it into
        # another container's memory-backed volume), no directory tree, and no execute, setuid or setgid bit (06111): a
        # copied file is data (hosts, resolv.conf, ...), and one that could be executed would be a program of the host's.
        CopyFileRequest if {
            regex.match(morph_copied_file, input.path)
            morph_regular_file
            bits.and(input.file_mode, 3145) == 0
        }

        morph_regular_file if {
            input.file_type == "Regular"
        }

        morph_regular_file if {
            not input.file_type
            bits.and(input.file_mode, 61440) == 32768
        }

        # Loopback stays the guest's: morph-init hands plaintext to the app over it. The agent finds the link to change
        # by its hardware address, not its name, and lo's is all zeros: an empty or all-zero hwAddr is refused whatever
        # the name, and so is any loopback address or route.
        UpdateInterfaceRequest if {
            input.interface.name != "lo"
            regex.match("[1-9A-Fa-f]", input.interface.hwAddr)
            every ip in morph_list(object.get(input.interface, "IPAddresses", null)) {
                not regex.match(morph_loopback, ip.address)
            }
        }

        UpdateRoutesRequest if {
            every route in morph_list(object.get(input.routes, "Routes", null)) {
                route.device != "lo"
                every field in ["dest", "gateway", "source"] {
                    not regex.match(morph_loopback, object.get(route, field, ""))
                }
            }
        }

        """;
}
