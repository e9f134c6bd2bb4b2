namespace Morphisms.Serving.Activation;

/// <summary>Tells the autoscaler that a revision with no ready instance has demand, so it starts one now rather than at its next tick.</summary>
public interface IScaleFromZeroTrigger
{
    /// <summary>Signals demand for <paramref name="revision"/>; <paramref name="queued"/> requests are waiting.</summary>
    void Poke(string revision, int queued);
}
