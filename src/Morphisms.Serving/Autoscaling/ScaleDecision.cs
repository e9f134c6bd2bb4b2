namespace Morphisms.Serving.Autoscaling;

/// <summary>What the autoscaler wants for a revision now, and why.</summary>
/// <param name="DesiredInstances">Instances the revision should have (after min/max and scale-to-zero rules).</param>
/// <param name="Panicking">True while in panic mode (scale-downs suspended).</param>
/// <param name="StableConcurrency">Average concurrency over the stable window, or null before any sample.</param>
/// <param name="PanicConcurrency">Average concurrency over the panic window, or null before any sample.</param>
/// <param name="Reason">A short explanation for logs and <c>morph ls</c>.</param>
public sealed record ScaleDecision(int DesiredInstances, bool Panicking, double? StableConcurrency, double? PanicConcurrency, string Reason);
