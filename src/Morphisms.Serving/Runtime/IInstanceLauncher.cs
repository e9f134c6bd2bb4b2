using Morphisms.Serving.Revisions;

namespace Morphisms.Serving.Runtime;

/// <summary>Starts instances of revisions. The real one spawns processes; tests substitute a fake.</summary>
public interface IInstanceLauncher
{
    /// <summary>Starts an instance of <paramref name="revision"/> named <paramref name="instanceId"/>; returns at once, before it is ready.</summary>
    IInstanceProcess Launch(Revision revision, string instanceId);
}
