namespace Morphisms.Deploy.Manifests;

/// <summary>
/// The container <c>securityContext</c> every exported workload gets, in the manner of the systemd unit's hardening
/// (<c>deploy/systemd/morph-kms.service</c>): no way to gain privileges (<c>no_new_privs</c>, so no setuid program gives
/// any back), no capabilities, the runtime's default seccomp filter, and a read-only root where the workload writes only
/// to its volumes. Container-level only, which Knative (1.8 and later) accepts without a feature flag.
/// </summary>
public static class ContainerSecurity
{
    /// <summary>
    /// The context; <paramref name="runAsNonRoot"/> null leaves the choice to the pod's <c>securityContext</c>, and
    /// <paramref name="readOnlyRoot"/> false leaves the root file system as the runtime makes it.
    /// </summary>
    public static OrderedDictionary<string, object?> Restricted(bool? runAsNonRoot, bool readOnlyRoot) => Map.Of(
        ("runAsNonRoot", runAsNonRoot),
        ("allowPrivilegeEscalation", false),
        ("readOnlyRootFilesystem", readOnlyRoot ? true : null),
        ("capabilities", Map.Of(("drop", new List<object> { "ALL" }))),
        ("seccompProfile", Map.Of(("type", "RuntimeDefault"))));

    /// <summary>
    /// A memory-backed <c>emptyDir</c> volume: a tmpfs, inside the TEE's memory under Kata. Without
    /// <paramref name="sizeLimit"/> it may grow to the pod's memory limit (the node's allocatable memory if none).
    /// </summary>
    public static OrderedDictionary<string, object?> MemoryVolume(string name, string? sizeLimit) =>
        Map.Of(("name", name), ("emptyDir", Map.Of(("medium", "Memory"), ("sizeLimit", sizeLimit))));
}
