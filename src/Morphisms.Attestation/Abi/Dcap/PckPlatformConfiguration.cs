namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>The optional configuration a Platform-CA PCK certificate states (OID 1.2.840.113741.1.13.1.7).</summary>
/// <param name="DynamicPlatform">Whether the platform can be extended with more packages.</param>
/// <param name="CachedKeys">Whether platform root keys are cached by Intel's registration service.</param>
/// <param name="SmtEnabled">Whether simultaneous multithreading is enabled.</param>
public sealed record PckPlatformConfiguration(bool? DynamicPlatform, bool? CachedKeys, bool? SmtEnabled);
