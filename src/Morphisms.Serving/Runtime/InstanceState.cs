namespace Morphisms.Serving.Runtime;

/// <summary>Where an instance is in its life.</summary>
public enum InstanceState
{
    /// <summary>Started for traffic, not ready yet.</summary>
    Starting,

    /// <summary>Ready and routed.</summary>
    Ready,

    /// <summary>Started for the warm pool, not ready yet.</summary>
    StandbyStarting,

    /// <summary>Ready (attested, secrets provisioned) but not routed: promoted on demand.</summary>
    Standby,

    /// <summary>Being stopped (SIGTERM, then SIGKILL after the drain timeout).</summary>
    Draining,
}
