namespace Morphisms.Kms.Policies;

/// <summary>A parsed ACL policy.</summary>
/// <param name="Name">The normalised (lower-case) name.</param>
/// <param name="Raw">The text as written, returned on reads.</param>
/// <param name="Rules">The path rules.</param>
internal sealed record Policy(string Name, string Raw, IReadOnlyList<PathRule> Rules);

/// <summary>One <c>path "..." { capabilities = [...] }</c> block.</summary>
/// <param name="Pattern">The path pattern: literal, <c>*</c> suffix glob, and <c>+</c> segment wildcards.</param>
/// <param name="Capabilities">What the block grants.</param>
internal sealed record PathRule(string Pattern, Capability Capabilities);

/// <summary>A policy text that is not valid; the message names the line and the problem.</summary>
internal sealed class PolicyParseException(string message) : Exception(message);
