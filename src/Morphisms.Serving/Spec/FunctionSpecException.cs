namespace Morphisms.Serving.Spec;

/// <summary>A function spec that cannot be used; the message names the field (and line, for YAML).</summary>
public sealed class FunctionSpecException(string message) : Exception(message);
